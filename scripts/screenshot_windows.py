"""Screenshot for docs/tracking.md, *Windows*: a small cell tracked in a large field.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_windows.py

Opens an 8-frame 2048 x 2048 ``LargeFieldTimelapse`` (cells of 15-30 px) in napari, docks the
SAM 2 widget with the shipped demo model and the window setting on "auto", clicks one cell on
frame 0, propagates forward and saves the last frame, zoomed on the cell with some of its
neighbours in view and the object's window drawn in yellow, as
``docs/images/windows_small_cell.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from screenshot import _save, _wait  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "windows_small_cell.png"))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--cell", type=int, default=20)
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sam2._napari._windows import WINDOW_MODES
    from napari_sam2.data import LargeFieldTimelapse
    from napari_sam2.model import load_model
    from napari_sam2.training.evaluate import interior_point

    field = LargeFieldTimelapse(shape=(2048, 2048), n_frames=args.frames, seed=4)
    viewer = napari.Viewer(title="napari-sam2: a 20 px cell in a 2048 px field")
    viewer.window.resize(1500, 950)
    viewer.add_image(field[:], name="2048 x 2048 field", contrast_limits=(400, 3500))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    app = QApplication.instance()
    c = widget.controller
    c.set_model(load_model("sam2_demo", device="cpu"), "sam2_demo")
    widget._model_combo.setCurrentText("sam2_demo")
    c.set_labels_layer(None)
    widget._window_combo.setCurrentText(WINDOW_MODES[1])
    box, gt = field.cell_mask(0, args.cell)
    r, col = interior_point(gt)
    c.go_to_frame(0)
    c.select_object(1)
    c.prompts.add_point((0, r + box[0], col + box[1]), True)
    _wait(app, c)
    c.propagate("forward")
    _wait(app, c)
    last = args.frames - 1
    c.go_to_frame(last)
    window = c.sessions.get(c.image_layer, c.current_ref(), create=False).result(last).windows[0]
    t, l, b, r = window.box
    viewer.add_shapes([[[t, l], [b, r]]], shape_type="rectangle", name="its window",
                      edge_color="yellow", face_color="transparent", edge_width=2)
    c.labels_layer.opacity = 0.45
    cy, cx = field.centre(last, args.cell)
    viewer.camera.center = (cy, cx)
    viewer.camera.zoom = 1.6
    for _ in range(20):
        app.processEvents()
    _save(viewer, Path(args.out), 1200, 128)
    print(f"saved {args.out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
