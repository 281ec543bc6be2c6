"""Take the README/docs screenshot of the SAM 2 widget in use (needs an X server, e.g. Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py

Opens the cell time-lapse sample in a napari window, docks the SAM 2 widget, clicks three
cells on the first frame with the demo model, propagates forward, shows a later frame and saves
``docs/images/plugin.png`` (palette-quantised to stay well under 300 KB).

It also saves the steps of the walk-through in docs/plugin.md, smaller
(``docs/images/step1_ready.png`` ... ``step4_correct.png``): the widget ready with the model
loaded, the clicks on frame 0, the view after propagating "both" from frame 0, and a box drawn
on a later frame for a new object.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wait(app, controller, timeout=600.0):
    deadline = time.monotonic() + timeout
    while controller.jobs.busy or controller.propagating:
        app.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError("the plugin did not finish")
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


def _save(viewer, path: Path, width: int | None, colors: int) -> None:
    """Screenshot of the window, scaled to ``width`` and palette-quantised (small PNGs)."""
    import numpy as np
    from PIL import Image

    shot = Image.fromarray(np.asarray(viewer.screenshot(canvas_only=False, flash=False))[..., :3])
    if width is not None and shot.width > width:
        shot = shot.resize((width, round(shot.height * width / shot.width)), Image.LANCZOS)
    shot.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def open_sample(frames: int, size: tuple[int, int]):
    """A napari window of ``size`` with the cell time-lapse sample (seed 0), the SAM 2 widget
    docked and the shipped demo model set, on frame 0. -> (viewer, widget, app, truth, kind)."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.demo import _load_model

    images, truth = make_cell_timelapse(n_frames=frames, seed=0)
    viewer = napari.Viewer(title="napari-sam2")
    viewer.window._qt_window.resize(*size)
    lo, hi = np.percentile(images, (0.5, 99.8))
    viewer.add_image(images, name="cells (t, y, x)", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    model, kind = _load_model("sam2_demo", None, "cpu")
    c.set_model(model, "sam2_demo")
    widget._model_combo.setCurrentText("sam2_demo")
    c.go_to_frame(0)
    viewer.reset_view()
    return viewer, widget, QApplication.instance(), truth, kind


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "plugin.png"))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--step-width", type=int, default=800,
                        help="width in pixels of the walk-through screenshots")
    args = parser.parse_args(argv)

    import numpy as np

    viewer, widget, app, truth, kind = open_sample(args.frames, (1500, 900))
    c = widget.controller
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def step(name: str) -> None:
        _wait(app, c)
        path = out.parent / f"{name}.png"
        _save(viewer, path, width=args.step_width, colors=64)
        print(f"saved {path} ({path.stat().st_size / 1024:.0f} KB)")

    step("step1_ready")
    c.set_labels_layer(None)
    for cell in [int(v) for v in np.unique(truth[0]) if v > 0][:3]:
        c.new_object()
        rows, cols = np.nonzero(truth[0] == cell)
        i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        c.prompts.add_point((0, rows[i], cols[i]), True)
        _wait(app, c)
    step("step2_click")
    widget._direction_combo.setCurrentText("both")
    widget._on_propagate()
    _wait(app, c)
    step("step3_propagate")  # the view is back on frame 0, where the run started
    # trained weights: show a frame the masks were propagated to
    c.go_to_frame(args.frames // 2)  # the demo loads trained weights or fails
    viewer.layers.selection.active = c.prompts.points
    _wait(app, c)
    _save(viewer, out, width=None, colors=128)
    # a box for a new object on a later frame: the cell least covered by the labels there
    t = args.frames // 2
    plane = c.labels_layer.data[t]
    cells = [int(v) for v in np.unique(truth[t]) if v > 0]
    cell = min(cells, key=lambda v: (plane[truth[t] == v] > 0).mean())
    rows, cols = np.nonzero(truth[t] == cell)
    c.new_object()
    r0, r1, c0, c1 = rows.min() - 2, rows.max() + 2, cols.min() - 2, cols.max() + 2
    c.prompts.boxes.add_rectangles(np.array([[t, r0, c0], [t, r0, c1], [t, r1, c1],
                                             [t, r1, c0]], float))
    viewer.layers.selection.active = c.prompts.boxes
    c.prompts.boxes.mode = "select"
    step("step4_correct")
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB, sam2_demo {kind})")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
