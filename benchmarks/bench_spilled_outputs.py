"""RSS of a session's tracked outputs at the official models' size, with the RAM bound on / off.

    .venv/bin/python benchmarks/bench_spilled_outputs.py --ram-mib 512
    .venv/bin/python benchmarks/bench_spilled_outputs.py --ram-mib none

No model runs: ``--objects`` mappings of one ``OutputSpill`` (``engine/spilled_outputs.py``,
as ``ObjectTrack.non_cond`` in a session) receive, frame after frame, outputs of the size a
1024-pixel model makes (float16 (1, 1, 256, 256) logits, a (1, 256) pointer, a score: 128 KiB),
as a propagation stores them, each object reading its last ``--lookback`` frames back at
every frame (as a propagation step does). Run the two settings in two processes (RSS and its
peak are per process). Printed: RSS (``/proc/self/status``) every ``--every`` frames, the
bytes in RAM and on disk, microseconds per stored output, and at the end the seconds to read
every output once (a correction going back over the whole stack).
"""

from __future__ import annotations

import argparse
import time

import torch
from _cpu import describe
from bench_memory import memory_kib


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=100)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--side", type=int, default=256, help="low-res logits side (1024 model: 256)")
    p.add_argument("--lookback", type=int, default=17)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--ram-mib", default="512", help="outputs_ram_bytes in MiB, or 'none'")
    args = p.parse_args(argv)
    from napari_sam2.engine.object_track import FrameOutput
    from napari_sam2.engine.spilled_outputs import OutputSpill

    ram = None if args.ram_mib.lower() == "none" else int(float(args.ram_mib) * 2**20)
    spill = OutputSpill(ram, keep_per_object=args.lookback)
    tracks = [spill.new_outputs() for _ in range(args.objects)]
    print(f"machine: {describe()}; {args.objects} objects x {args.frames} frames, logits "
          f"{args.side}^2 float16; outputs_ram_bytes {ram}")
    print("| frame | RSS (MiB) | outputs in RAM (MiB) | spilled (MiB) | us per stored output |")
    print("|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for f in range(args.frames):
        for t in tracks:
            for back in range(max(0, f - args.lookback + 1), f):
                t[back]  # what a propagation step reads
            t[f] = FrameOutput(
                low_res=torch.randn(1, 1, args.side, args.side, generator=gen).half(),
                obj_ptr=torch.randn(1, 256, generator=gen), score=torch.ones(1, 1),
                from_prompt=False)
        if (f + 1) % args.every == 0 or f + 1 == args.frames:
            us = 1e6 * (time.perf_counter() - start) / ((f + 1) * args.objects)
            print(f"| {f + 1} | {memory_kib()['VmRSS'] / 1024:.0f} | {spill.ram / 2**20:.0f} | "
                  f"{spill.spilled / 2**20:.0f} | {us:.0f} |", flush=True)
    start = time.perf_counter()
    for t in tracks:
        for f in range(args.frames):
            t[f]
    print(f"reading every output once: {time.perf_counter() - start:.1f} s; RSS "
          f"{memory_kib()['VmRSS'] / 1024:.0f} MiB, peak {memory_kib()['VmHWM'] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
