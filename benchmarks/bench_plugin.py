"""Plugin speed: what a user waits for after a click, with and without the slice prefetch.

    .venv/bin/python benchmarks/bench_plugin.py                  # sam2_demo, CPU
    .venv/bin/python benchmarks/bench_plugin.py --model sam2.1_hiera_tiny --frames 8

Runs the real widget on a napari viewer model (Qt offscreen) over a synthetic 16-bit
time-lapse and prints the machine, then medians (min-max) over ``--repeats`` clicks of:

* ``click, prefetched``: a click on a frame whose embedding the prefetch worker already
  computed (the normal case: a slice is prefetched as soon as it is shown) -> decoder only;
* ``click, cold`` (baseline, same run): a click on a frame never shown (encoder + decoder);
* ``propagate``: frames/s of a forward propagation streamed into the Labels layer, against the
  engine's own ``TrackingSession.propagate`` drained without the plugin (baseline).

Latency = time from the prompt being added until the mask is in the Labels layer.
Random weights (speed does not depend on their values) unless the model has shipped weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def _fmt(values) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="sam2_demo")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np
    import torch
    from napari.components import ViewerModel
    from qtpy.QtWidgets import QApplication

    from napari_sam2._napari._widget import Sam2Widget
    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.demo import _load_model
    from napari_sam2.engine import TrackingSession

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    images, truth = make_cell_timelapse(n_frames=args.frames, seed=0)
    try:
        model, kind = _load_model(args.model, None, "cpu")
    except (OSError, ValueError):  # no weights for this variant here: speed needs none
        from napari_sam2.model import build_model

        model, kind = build_model(args.model, device="cpu"), "random weights"
    print(f"model: {args.model} ({kind}), image {images.shape} {images.dtype}")
    app = QApplication.instance() or QApplication([])
    viewer = ViewerModel()
    viewer.add_image(images, name="cells", contrast_limits=(float(images.min()), float(images.max())))
    widget = Sam2Widget(viewer)
    c = widget.controller
    c.set_model(model, args.model)
    c.set_labels_layer(None)

    def settle():
        while c.jobs.busy or c.propagating or c.prefetcher.busy:
            app.processEvents()
            time.sleep(0.001)

    rows, cols = np.nonzero(truth[0] == 1)
    point = (rows[len(rows) // 2], cols[len(cols) // 2])
    warm, cold = [], []
    for i in range(min(args.repeats, args.frames // 3)):
        # frame 3i is shown (it and 3i +- 1 get prefetched); 3i + 2 is clicked without showing it
        frame = 3 * i
        c.go_to_frame(frame)
        c.prefetch_current()
        settle()
        t0 = time.perf_counter()
        c.prompts.add_point((frame, *point), True)
        settle()
        warm.append(time.perf_counter() - t0)
        c.prefetcher.stop()
        t0 = time.perf_counter()
        c.prompts.points.add(np.array([[frame + 2, *point]], float))  # no slice change
        c.prompts.points.features.loc[len(c.prompts.points.data) - 1, ["obj_id", "positive"]] = [1, True]
        c.segment(c.current_ref(), frame + 2, 1)
        settle()
        cold.append(time.perf_counter() - t0)
    print(f"click, prefetched   {_fmt(warm)}")
    print(f"click, cold         {_fmt(cold)}   (baseline: no prefetch)")

    c.go_to_frame(0)
    settle()
    t0 = time.perf_counter()
    c.propagate("forward")
    settle()
    plugin_fps = args.frames / (time.perf_counter() - t0)
    session = TrackingSession(model, images, intensity_range=(float(images.min()), float(images.max())))
    session.add_points(0, 1, [point], [1])
    t0 = time.perf_counter()
    n = sum(1 for _ in session.propagate(0))
    engine_fps = n / (time.perf_counter() - t0)
    print(f"propagate, plugin   {plugin_fps:8.2f} frames/s (streamed into Labels, features partly cached)")
    print(f"propagate, engine   {engine_fps:8.2f} frames/s (baseline: TrackingSession alone, cold)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
