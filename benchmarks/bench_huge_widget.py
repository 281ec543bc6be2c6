"""The widget on a huge lazy image (issue 19): click + tracked frames, time and memory.

    .venv/bin/python benchmarks/bench_huge_widget.py                     # 50000 px, 4 frames
    .venv/bin/python benchmarks/bench_huge_widget.py --size 20000 --frames 3

Runs the real widget (napari ``ViewerModel``, Qt offscreen) with the shipped ``sam2_demo`` on
a (T, size, size) uint16 dask array over ``data.LargeFieldTimelapse`` (512 px chunks), shown
as a multiscale image whose coarser levels are flat background (display only: rendering the
whole field to show it zoomed out would take minutes; SAM reads its windows from level 0).
The window setting is "auto"; the widget makes its Labels layer chunked and multiscale
(``_napari/_big_labels.py``). Prints the machine, then for each step its time and peak extra
memory: resident (``bench_memory``'s method: RSS high-water mark after ``malloc_trim`` and a
reset; torch's buffers included), and the IoU of the object on each frame. Baseline in the same run: the engine alone
(``TrackingSession`` with the same window setting, no napari, no labels) on the same frames.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


class Background:
    """A flat coarse level of the field (display only)."""

    dtype, ndim = np.dtype(np.uint16), 3

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.size = int(np.prod(self.shape))

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        shape = [len(range(*k.indices(n))) for k, n in zip(key, self.shape)
                 if isinstance(k, slice)]
        return np.full(shape, 600, np.uint16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50000)
    parser.add_argument("--frames", type=int, default=4, help="the clicked frame + tracked")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("NAPARI_SAM2_BFLOAT16", "0")
    import dask.array as da
    import torch
    from _cpu import describe
    from bench_memory import peak_since_settle, settle
    from napari.components import ViewerModel
    from qtpy.QtWidgets import QApplication

    from napari_sam2._napari._widget import Sam2Widget
    from napari_sam2.data import LargeFieldTimelapse
    from napari_sam2.engine import ImagePredictor, TrackingSession
    from napari_sam2.model import load_model
    from napari_sam2.training.evaluate import interior_point, jaccard

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {describe()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    size, n = args.size, args.frames
    field = LargeFieldTimelapse(shape=(size, size), n_frames=n, seed=1, cache_tiles=16)
    lazy = da.from_array(field, chunks=(1, 512, 512), asarray=True)
    frame_gib = size * size * 4 / 2**30
    print(f"image ({n}, {size}, {size}) uint16, lazy; one int32 labels frame {frame_gib:.1f} GiB")
    model = load_model("sam2_demo", device="cpu")
    warm = ImagePredictor(model)  # the first model call pays one-off costs: not measured
    warm.set_image(np.zeros((64, 64), np.uint16))
    warm.predict(points=[[32, 32]], labels=[1])
    da.zeros(2).sum().compute()  # and dask's first compute imports its scheduler (0.2 s)
    app = QApplication.instance() or QApplication([])
    viewer = ViewerModel()
    normal = LargeFieldTimelapse(shape=(2048, 2048), n_frames=n, seed=1)
    small = viewer.add_image(normal[:], name="normal", contrast_limits=(300, 6000))
    huge = viewer.add_image([lazy] + [Background((n, size // f, size // f)) for f in (16, 64)],
                            multiscale=True, name="field", contrast_limits=(300, 6000))
    widget = Sam2Widget(viewer)
    c = widget.controller
    c.set_model(model, "sam2_demo")

    def wait():
        while c.jobs.busy or c.propagating or c.prefetcher.busy:
            app.processEvents()
            time.sleep(0.002)

    def measure(name, fn):
        before = settle()
        # no tracemalloc: its stop() while the widget's worker threads allocate crashed
        # CPython 3.11 (tests/napari/test_huge_labels.py, ``PeakRss``)
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        rss = (peak_since_settle() - before) / 2**20
        print(f"  {name:44s} {seconds:7.2f} s   peak extra RSS {rss:6.0f} MiB")

    # baseline in the same run: the widget on a normal 2048 px frame held in memory
    c.set_image_layer(small)
    c.set_labels_layer(None)
    c.prefetch_current()  # as when the frame is shown: the whole-frame click is decoder only
    wait()
    kb = normal.n_cells // 2
    box, gt = normal.cell_mask(0, kb)
    r, col = interior_point(gt)
    print("widget, 2048 px in-memory frame (baseline):")
    for name, window in (("whole frame", None), ("auto window", "auto")):
        c.set_window(window)
        c.prompts.clear()
        measure(f"click ({name}, frame prefetched)" if window is None else f"click ({name})",
                lambda: (c.prompts.add_point((0, r + box[0], col + box[1]), True), wait()))

    c.set_image_layer(huge)
    c.set_window("auto")
    c.set_labels_layer(None)
    labels = c.labels_layer.data[0]
    print(f"labels layer: multiscale {c.labels_layer.multiscale}, level 0 "
          f"{type(labels).__module__}.{type(labels).__name__} chunks {labels.chunks}")

    k = field.n_cells // 2
    box, gt = field.cell_mask(0, k)
    r, col = interior_point(gt)
    point = (r + box[0], col + box[1])

    def ious(read):
        out = []
        for t in range(n):
            b, truth = field.cell_mask(t, k)
            out.append(jaccard(read(t, b) == 1, truth))
        return "  ".join(f"{v:.3f}" for v in out)

    def click():
        c.prompts.add_point((0, *point), True)
        wait()

    def track():
        c.propagate("forward")
        wait()

    print(f"widget, {size} px lazy frames:")
    measure("click (auto window)", click)
    measure(f"propagate {n - 1} frames into the Labels layer", track)
    print(f"  IoU per frame: {ious(lambda t, b: labels[t, b[0]:b[2], b[1]:b[3]])}   "
          f"labels chunks stored: {labels.nchunks_initialized}")
    with tempfile.TemporaryDirectory() as tmp:
        from napari_sam2._napari._writer import write_zarr

        measure("save labels to OME-Zarr", lambda: write_zarr(
            str(Path(tmp) / "labels.zarr"), c.labels_layer.data, {"multiscale": True}))

    print("engine alone (baseline, same frames, window auto, tiles rendered afresh):")
    state = {}
    again = LargeFieldTimelapse(shape=(size, size), n_frames=n, seed=1, cache_tiles=16)
    fresh = da.from_array(again, chunks=(1, 512, 512), asarray=True)

    def engine_click():
        state["s"] = TrackingSession(model, fresh, window="auto", intensity_range=(300, 6000))
        state["s"].add_points(0, 1, [point], [1])

    def engine_track():
        state["results"] = list(state["s"].propagate(0))

    measure("click (auto window)", engine_click)
    measure(f"propagate {n - 1} frames", engine_track)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
