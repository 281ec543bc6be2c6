"""``napari-sam2 track`` on a long lazy zarr stack: frames/s and resident memory along the run.

A synthetic time-lapse (``make_cell_timelapse``, one clip of 32 frames tiled along time) is
written to a zarr array chunk by chunk, then ``napari-sam2 track`` runs in a fresh process on
it with a click per cell on frame 0 (forward). The child samples its own resident memory
(``/proc/self/statm``) every 50 frames; flat memory means the last samples equal the first
ones after warm-up, however long the stack.

    .venv/bin/python benchmarks/bench_track.py                         # 1000 frames, sam2_demo
    .venv/bin/python benchmarks/bench_track.py --frames 300 --shape 96 128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _cpu import describe

CHILD = r"""
import json, os, sys, time
from napari_sam2.cli import main
import napari_sam2.headless.runner as runner

page = os.sysconf("SC_PAGE_SIZE")
samples = []
t0 = [None]
inner = runner.track

def rss_mib():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20

def track(*args, progress=None, **kwargs):
    def tick(done, total):
        if t0[0] is None:
            t0[0] = time.perf_counter()
        if done % 50 == 0 or done == total:
            samples.append((done, round(rss_mib(), 1), round(time.perf_counter() - t0[0], 2)))
        if progress is not None:
            progress(done, total)
    return inner(*args, progress=tick, **kwargs)

runner.track = track
status = main(sys.argv[1:])
print("RESULT " + json.dumps({"status": status, "samples": samples}))
"""


def make_stack(path: Path, frames: int, shape, cells: int) -> Path:
    """A (frames, H, W) uint16 zarr array, one frame per chunk, and a clicks CSV."""
    import zarr

    from napari_sam2.data.synthetic import make_cell_timelapse

    clip, labels = make_cell_timelapse(n_frames=32, shape=tuple(shape), n_cells=cells, seed=4)
    array = zarr.create_array(str(path / "stack.zarr"), shape=(frames, *shape), dtype=clip.dtype,
                              chunks=(1, *shape))
    for t in range(0, frames, 32):
        n = min(32, frames - t)
        array[t:t + n] = clip[:n] if (t // 32) % 2 == 0 else clip[::-1][:n]  # no jump in time
    rows = ["obj_id,frame,row,col,label"]
    for v in (int(v) for v in np.unique(labels[0]) if v):
        r, c = np.argwhere(labels[0] == v).mean(0)
        rows.append(f"{v},0,{r:.1f},{c:.1f},1")
    (path / "clicks.csv").write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--model", default="sam2_demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_stack(Path(tmp), args.frames, args.shape, args.cells)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
               "OMP_WAIT_POLICY": "PASSIVE"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, "track", str(folder / "stack.zarr"), "--prompts",
             str(folder / "clicks.csv"), "-o", str(folder / "out.zarr"), "--model", args.model,
             "--device", args.device, "--direction", "forward", "--no-progress"],
            env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            sys.exit(f"track failed ({proc.returncode}): {proc.stderr[-2000:]}")
        samples = json.loads(line[7:])["samples"]
    done, _, seconds = samples[-1]
    print(f"{describe()}; torch threads {args.threads}")
    print(f"{args.frames} frames {args.shape[0]}x{args.shape[1]}, {args.cells} objects, "
          f"{args.model} on {args.device}: {done / seconds:.2f} frames/s in the propagation "
          f"({wall:.0f} s for the whole command)")
    print("frames done -> resident MiB: " + ", ".join(f"{d}: {m:.0f}" for d, m, _ in samples))
    after = [m for d, m, _ in samples if d >= 100]
    if after:
        print(f"growth from frame 100 to the end: {after[-1] - after[0]:+.1f} MiB "
              f"(peak {max(m for _, m, _ in samples):.0f} MiB)")


if __name__ == "__main__":
    main()
