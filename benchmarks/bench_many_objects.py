"""Tracking many objects at once: frames/s and memory against the number of objects.

    .venv/bin/python benchmarks/bench_many_objects.py                       # 10 50 100 150
    .venv/bin/python benchmarks/bench_many_objects.py --objects 10 100 --frames 16

For each object count N: a synthetic cell time-lapse (``make_cell_timelapse``) with N cells on
a ``--shape`` frame, every cell of frame 0 given to ``TrackingSession.add_mask`` (its true
mask, so that N is exact), then ``propagate(0)`` over ``--frames`` frames with the shipped
``sam2_demo`` on the CPU, each ``FrameResult`` dropped once read (as the plugin and the CLI
stream them into a label image). Printed per N: seconds to add the masks, frames/s and
milliseconds per object-frame of the propagation, the process RSS after the first tracked
frame and at the end (``/proc/self/status`` VmRSS; Linux), and the RSS high-water mark.
A bounded run keeps RSS(end) - RSS(frame 1) small against the per-frame output size.

``--outputs-ram-mib`` sets the session's ``outputs_ram_bytes`` (default: the session's 512 MiB;
``none``: unbounded) and the last columns show the tracked outputs in RAM and spilled to disk
at the end (``memory_stats``). Compare the RSS of a long run with the bound on and off in two
processes (the peak is per process):

    .venv/bin/python benchmarks/bench_many_objects.py --objects 100 --frames 40 \
        --outputs-ram-mib 4
    .venv/bin/python benchmarks/bench_many_objects.py --objects 100 --frames 40 \
        --outputs-ram-mib none
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _cpu import describe
from bench_memory import memory_kib


def rss_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    kib = memory_kib()
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def _ram_bytes(text: str):
    """``--outputs-ram-mib``: MiB -> bytes; 'none' -> the string 'none' (unbounded)."""
    return "none" if text.lower() == "none" else int(float(text) * 2**20)


def one(model, n: int, args) -> dict:
    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.engine import TrackingSession

    images, labels = make_cell_timelapse(n_frames=args.frames, shape=tuple(args.shape),
                                         n_cells=n, seed=args.seed)
    ids = [int(k) for k in np.unique(labels[0]) if k]
    kw = {} if args.outputs_ram_mib is None else {
        "outputs_ram_bytes": None if args.outputs_ram_mib == "none" else args.outputs_ram_mib}
    session = TrackingSession(model, images, **kw)
    start = time.perf_counter()
    for k in ids:
        session.add_mask(0, k, labels[0] == k, others=False)
    t_add = time.perf_counter() - start
    start = time.perf_counter()
    rss_first = None
    frames = 0
    for result in session.propagate(0):
        if result.frame == 0:
            continue
        frames += 1
        if rss_first is None:
            rss_first = rss_mib()[0]
        del result  # streamed: nothing of a frame is kept here
    seconds = time.perf_counter() - start
    rss_end, hwm = rss_mib()
    stats = session.memory_stats()
    return {"outputs_mib": stats["outputs"] / 2**20, "spilled_mib": stats["spilled"] / 2**20,
            "objects": len(ids), "add_s": t_add, "fps": frames / seconds,
            "ms_per_object_frame": 1000 * seconds / max(1, frames * len(ids)),
            "rss_first": rss_first, "rss_end": rss_end, "hwm": hwm}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, nargs="+", default=[10, 50, 100, 150])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--shape", type=int, nargs=2, default=(512, 512))
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--outputs-ram-mib", type=_ram_bytes, default=None,
                   help="the session's outputs_ram_bytes in MiB, or 'none' (unbounded)")
    args = p.parse_args(argv)
    os.environ["NAPARI_SAM2_BFLOAT16"] = "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_sam2.model import load_model

    model = load_model("sam2_demo", device="cpu", progress=False)
    bound = "default" if args.outputs_ram_mib is None else args.outputs_ram_mib
    print(f"machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"sam2_demo float32, frame {tuple(args.shape)}, {args.frames} frames, "
          f"outputs_ram_bytes {bound}")
    print("| objects | add masks (s) | frames/s | ms per object-frame | RSS after frame 1 "
          "(MiB) | RSS at end (MiB) | RSS peak (MiB) | outputs in RAM (MiB) | spilled (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.objects:
        r = one(model, n, args)
        print(f"| {r['objects']} | {r['add_s']:.1f} | {r['fps']:.2f} | "
              f"{r['ms_per_object_frame']:.1f} | {r['rss_first']:.0f} | {r['rss_end']:.0f} | "
              f"{r['hwm']:.0f} | {r['outputs_mib']:.1f} | {r['spilled_mib']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
