"""What the live Tracks layer costs a propagation in the widget.

    xvfb-run -a .venv/bin/python benchmarks/bench_tracks_layer.py
    xvfb-run -a .venv/bin/python benchmarks/bench_tracks_layer.py --frames 32 --repeats 3   # longer

Runs the real widget in a shown napari viewer (so the Tracks layer is drawn) on a synthetic
time-lapse of dividing cells with the shipped sam2_demo, one click per cell on frame 0, and
propagates forward (automatic divisions off, so both variants do the same work) with the
Tracks layer on and off, alternating (on, off, on, off, ...) after one warm-up run that fills
the feature cache (each run after it starts from an undo of the last, so it writes every
frame again). Prints the machine, the load average, the run times (median, min-max) and,
with the layer on, the time spent in ``TracksView.flush`` (centroids + layer rebuilds) and how
many rebuilds a run made.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def clicked_viewer(n_frames: int, n_cells: int, seed: int = 0):
    """A shown napari viewer with ``make_dividing_timelapse(n_frames, n_cells, seed)``, the
    widget docked with the shipped sam2_demo, and one click per cell on frame 0 (each its own
    object). Returns (viewer, widget, idle() that processes events until the plugin is idle,
    images). Also used by scripts/screenshot_divisions.py."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_sam2.data.dividing import make_dividing_timelapse
    from napari_sam2.model import load_model

    images, truth, _ = make_dividing_timelapse(n_frames=n_frames, n_cells=n_cells, seed=seed)
    model = load_model("sam2_demo", device="cpu", progress=False)
    viewer = napari.Viewer(show=True)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    app = QApplication.instance()

    def idle():
        while c.jobs.busy or c.propagating or c.prefetcher.busy:
            app.processEvents()
            time.sleep(0.002)
        for _ in range(20):
            app.processEvents()

    c.go_to_frame(0)
    idle()
    for cell in range(1, n_cells + 1):
        rows, cols = np.nonzero(truth[0] == cell)
        i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        if cell > 1:
            c.new_object()
        c.prompts.add_point((0, rows[i], cols[i]), True)
        idle()
    return viewer, widget, idle, images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    viewer, widget, idle, images = clicked_viewer(args.frames, args.cells)
    c = widget.controller
    print(f"data: {images.shape} {images.dtype}, {args.cells} cells clicked on frame 0")

    spent = {"s": 0.0}
    flush = c.tracks.flush

    def timed_flush(force=False):
        t0 = time.perf_counter()
        try:
            return flush(force)
        finally:
            spent["s"] += time.perf_counter() - t0

    attach = c._attach_tracks
    times = {"on": [], "off": []}
    in_flush, rebuilds = [], []
    for k in range(1 + 2 * args.repeats):
        mode = "on" if k % 2 else "off"  # run 0 (off) is the warm-up
        if mode == "on":
            c._attach_tracks, c.tracks.flush = attach, timed_flush
            attach()
        else:
            c.tracks.attach(None, None)
            c._attach_tracks, c.tracks.flush = (lambda: None), (lambda force=False: False)
        if k:
            c.undo()  # the last run's masks go, so that this run writes every frame again
        spent["s"], before = 0.0, c.tracks.rebuilds
        c.go_to_frame(0)
        idle()
        t0 = time.perf_counter()
        c.propagate("forward", divisions=False)
        idle()
        elapsed = time.perf_counter() - t0
        if k == 0:
            print(f"warm-up run: {elapsed:.2f} s")
            continue
        times[mode].append(elapsed)
        if mode == "on":
            in_flush.append(spent["s"])
            rebuilds.append(c.tracks.rebuilds - before)
    for mode in ("on", "off"):
        v = times[mode]
        print(f"Tracks layer {mode:3}: run {statistics.median(v):.2f} s ({min(v):.2f}-{max(v):.2f}),"
              f" {args.frames / statistics.median(v):.1f} frames/s")
    print(f"in TracksView.flush: {statistics.median(in_flush) * 1000:.0f} ms per run "
          f"({min(in_flush) * 1000:.0f}-{max(in_flush) * 1000:.0f}), "
          f"{statistics.median(rebuilds):.0f} layer rebuilds per run")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
