"""The scripted demo session in napari: the GUI half of ``python -m napari_sam2.demo``.

``play(args, model, source)`` builds the plugin widget on a napari viewer model (Qt offscreen
with ``--headless``) or in a napari window, clicks cells of a synthetic 16-bit time-lapse on
frame 0, propagates with the worker threads the GUI uses, scores each object against the ground
truth, saves the labels with the plugin's OME-Zarr and TIFF writers and reopens them. The model
is loaded before (``napari_sam2.demo``), so a missing or damaged file stops the demo before any
of this starts.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np


def _wait(controller, app, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        app.processEvents()
        if not controller.jobs.busy and not controller.propagating:
            app.processEvents()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the plugin did not finish within {timeout:.0f} s")
        time.sleep(0.01)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def play(args, model, source: str) -> int:
    """Run the demo session with ``model`` (weights from ``source``); 0 when the saved labels
    reopen identical, 1 otherwise."""
    if args.headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qtpy.QtWidgets import QApplication

    from napari_sam2._napari._reader import read_tiff, read_zarr
    from napari_sam2._napari._widget import Sam2Widget
    from napari_sam2._napari._writer import write_tiff, write_zarr
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, truth = make_cell_timelapse(n_frames=args.frames, seed=0)
    print(f"data: {images.shape} {images.dtype}, intensities {images.min()}-{images.max()}")
    if args.headless:
        from napari.components import ViewerModel

        app = QApplication.instance() or QApplication(sys.argv[:1])
        viewer = ViewerModel(title="napari-sam2 demo")
        widget = Sam2Widget(viewer)
    else:
        import napari

        viewer = napari.Viewer(title="napari-sam2 demo")
        app = QApplication.instance()
        widget = None
    lo, hi = np.percentile(images, (0.5, 99.8))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    if widget is None:
        _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, args.model)
    c.set_labels_layer(None)
    c.go_to_frame(0)
    app.processEvents()

    cells = [int(v) for v in np.unique(truth[0]) if v > 0][: args.cells]
    clicked = {}
    t0 = time.perf_counter()
    for cell in cells:
        obj = c.new_object()
        rows, cols = np.nonzero(truth[0] == cell)
        inside = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        c.prompts.add_point((0, rows[inside], cols[inside]), True)
        _wait(c, app, args.timeout)
        clicked[obj] = cell
    print(f"clicked {len(cells)} cells on frame 0 in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    c.propagate("forward")
    _wait(c, app, args.timeout)
    elapsed = time.perf_counter() - t0
    labels = np.asarray(c.labels_layer.data)
    fps = args.frames / elapsed
    print(f"propagated {args.frames} frames in {elapsed:.1f} s ({fps:.2f} frames/s)")
    for obj, cell in clicked.items():
        ious = [_iou(labels[t] == obj, truth[t] == cell) for t in range(args.frames)]
        print(f"  object {obj} (true cell {cell}): mean IoU {np.mean(ious):.3f}, "
              f"last frame {ious[-1]:.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    attrs = {"name": c.labels_layer.name, "scale": c.labels_layer.scale,
             "translate": c.labels_layer.translate, "axis_labels": ("t", "y", "x"),
             "metadata": {"napari_sam2": {**c.labels_layer.metadata.get("napari_sam2", {}),
                                          "weights": source}}}
    ok = True
    formats = ((write_zarr, read_zarr, "labels.zarr"), (write_tiff, read_tiff, "labels.tif"))
    for writer, reader, name in formats:
        (path,) = writer(str(out / name), labels, attrs)
        back = reader(path)[0][0]
        same = back.shape == labels.shape and bool(np.array_equal(back, labels))
        ok &= same
        print(f"saved {path}: reopened {'identical' if same else 'DIFFERENT'}")
    if not args.headless:
        import napari

        napari.run()
    return 0 if ok else 1
