"""Take the README/docs screenshot of the SAM 2 widget in use (needs an X server, e.g. Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py

Opens the cell time-lapse sample in a napari window, docks the SAM 2 widget, clicks three
cells on the first frame with the demo model, propagates forward, shows a later frame and saves
``docs/images/plugin.png`` (palette-quantised to stay well under 300 KB).
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "plugin.png"))
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args(argv)

    import napari
    import numpy as np
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.demo import _load_model

    images, truth = make_cell_timelapse(n_frames=args.frames, seed=0)
    viewer = napari.Viewer(title="napari-sam2")
    viewer.window._qt_window.resize(1500, 900)
    lo, hi = np.percentile(images, (0.5, 99.8))
    viewer.add_image(images, name="cells (t, y, x)", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    app = QApplication.instance()
    c = widget.controller
    model, kind = _load_model("sam2_demo", None, "cpu")
    c.set_model(model, "sam2_demo")
    widget._model_combo.setCurrentText("sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    for cell in [int(v) for v in np.unique(truth[0]) if v > 0][:3]:
        c.new_object()
        rows, cols = np.nonzero(truth[0] == cell)
        i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        c.prompts.add_point((0, rows[i], cols[i]), True)
        _wait(app, c)
    c.propagate("forward")
    _wait(app, c)
    # trained weights: show a frame the masks were propagated to; random weights (masks not
    # meaningful): show the clicked frame with its prompts
    c.go_to_frame(args.frames // 2)  # the demo loads trained weights or fails
    viewer.layers.selection.active = c.prompts.points
    viewer.reset_view()
    _wait(app, c)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    img = Image.fromarray(np.asarray(shot)[..., :3]).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    img.save(out, optimize=True)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB, sam2_demo {kind})")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
