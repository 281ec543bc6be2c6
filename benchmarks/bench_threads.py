"""OpenMP wait policy under load: the same work, quiet and beside a busy process.

    .venv/bin/python benchmarks/bench_threads.py                 # sam2_demo, torch's threads
    .venv/bin/python benchmarks/bench_threads.py --variant medsam2 --frames 3

Each measurement runs in a fresh Python (the OpenMP runtime reads ``OMP_WAIT_POLICY`` once,
when torch loads it) with the policy ``PASSIVE`` (what napari-sam2 sets, see
``napari_sam2.threads``), unset (libgomp's default: spin 300000 times, then sleep) or
``ACTIVE`` (spin always). The work is the plugin's: encode an image, clicks on the encoded image
(decoder path), then track one object through a few frames (encoding included); random-init
weights (speed does not depend on their values). "busy" runs one competing Python process that
spins on one core for the whole measurement. Prints the machine (CPU model, bf16/AMX flags,
cores, load average before each run), torch's version and threads, then medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _cpu import describe

POLICIES = {"PASSIVE": "PASSIVE", "unset": None, "ACTIVE": "ACTIVE"}


def child(variant: str, n_frames: int, clicks: int) -> dict:
    """The timed work in this process; medians in seconds."""
    import hashlib

    import numpy as np
    import torch

    from bench_tracking import SyntheticStack
    from napari_sam2.engine import ImagePredictor, TrackingSession
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    model = build_model(variant).eval()
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    pred = ImagePredictor(model)
    pred.embedding = pred.encode(image)  # warm-up
    encode = []
    for _ in range(5):
        t0 = time.perf_counter()
        pred.encode(image)
        encode.append(time.perf_counter() - t0)
    click = []
    for i in range(clicks + 2):
        t0 = time.perf_counter()
        pred.predict(points=[[200 + i, 180]], labels=[1])
        click.append(time.perf_counter() - t0)
    session = TrackingSession(model, SyntheticStack(n_frames + 1))
    session.add_points(0, 1, [[64, 51]], [1])
    masks, logits = hashlib.sha256(), hashlib.sha256()
    frames, t0 = [], time.perf_counter()
    for result in session.propagate():
        frames.append(time.perf_counter() - t0)
        masks.update((result.logits > 0).tobytes())
        logits.update(result.logits.tobytes())
        t0 = time.perf_counter()
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "masks": masks.hexdigest(), "logits": logits.hexdigest(),
            "encode": statistics.median(encode), "click": statistics.median(click[2:]),
            "frame": statistics.median(frames[1:]), "frames": len(frames) - 1}


def measure(policy: str | None, busy: bool, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_NUM_THREADS"] = str(args.threads)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        load = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--variant", args.variant,
             "--frames", str(args.frames), "--clicks", str(args.clicks)],
            env=env, capture_output=True, text=True, timeout=args.timeout, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = load
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="sam2_demo")
    ap.add_argument("--frames", type=int, default=8, help="propagated frames per run")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="OMP_NUM_THREADS of each run (default: the logical CPUs)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.variant, args.frames, args.clicks)))
        return

    print(f"machine: {describe()}; load average "
          f"{os.getloadavg()[0]:.1f} before the runs", flush=True)
    rows = {}
    for busy in (False, True):
        for name, policy in POLICIES.items():
            r = measure(policy, busy, args)
            rows[name, busy] = r
            print(f"{name:>7} {'busy ' if busy else 'quiet'}: encode {r['encode'] * 1e3:7.0f} ms, "
                  f"click {r['click'] * 1e3:6.1f} ms, frame {r['frame'] * 1e3:7.0f} ms "
                  f"(torch {r['torch']}, {r['threads']} threads, load average before "
                  f"{r['load']:.1f})", flush=True)
    print(f"\n{args.variant}, medians; busy = one competing process spinning on one core")
    print(f"{'policy':>7} | {'encode quiet/busy ms':>21} | {'click quiet/busy ms':>20} | "
          f"{'frame quiet/busy ms':>20} | frame busy/quiet | frame / PASSIVE's (quiet, busy)")
    for name in POLICIES:
        q, b = rows[name, False], rows[name, True]
        cells = [f"{q[k] * 1e3:9.1f} / {b[k] * 1e3:9.1f}" for k in ("encode", "click", "frame")]
        p_q, p_b = rows["PASSIVE", False]["frame"], rows["PASSIVE", True]["frame"]
        print(f"{name:>7} | {cells[0]:>21} | {cells[1]:>20} | {cells[2]:>20} | "
              f"{b['frame'] / q['frame']:15.1f}x | {q['frame'] / p_q:.1f}x, "
              f"{b['frame'] / p_b:.1f}x")
    same = {key: len({r[key] for r in rows.values()}) == 1 for key in ("masks", "logits")}
    print(f"tracked masks identical in all {len(rows)} runs: {'yes' if same['masks'] else 'NO'}; "
          f"logits bit-identical: {'yes' if same['logits'] else 'no'}")


if __name__ == "__main__":
    main()
