"""Peak extra memory of the image predictor on big images: one encode and one click.

    .venv/bin/python benchmarks/bench_memory.py                        # 2000^2 and 8000^2
    .venv/bin/python benchmarks/bench_memory.py --sizes 2000 8000 20000 --repeats 3
    .venv/bin/python benchmarks/bench_memory.py --baseline-src /work/main/src   # old code too

What is measured: the resident set size (RSS) of a fresh Python process, from the kernel.
Each measurement runs in its own subprocess, which loads the shipped ``sam2_demo`` model,
warms it up on a 64 x 64 image, builds an N x N uint16 test image (bright disks on a noisy
background, written block by block), returns freed heap memory to the system
(``malloc_trim``), then resets the kernel's RSS high-water mark (``/proc/self/clear_refs``,
Linux) and reads ``VmRSS`` before and ``VmHWM`` after:

* ``encode``: ``ImagePredictor.encode(image)`` (mapping to [0, 1], resize to the model input,
  image encoder, decoder cache); extra = peak RSS during the call - RSS before it;
* ``click``: ``predict(points=[centre of a disk], labels=[1])``, three masks (M, N, N) bool;
  extra = the same peak difference, which includes the returned masks themselves (3 N^2
  bytes; printed separately as "masks").

So "extra" counts every allocation that touches memory (numpy, torch, the allocator's
slack), not only traced Python objects; it is the number a laptop's memory has to hold on
top of the image. ``--baseline-src DIR`` runs the same child with ``PYTHONPATH=DIR`` (e.g. the
code before this change) in the same run, alternating with ours. Medians over ``--repeats``.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _cpu import describe

MIB = 2**20


def memory_kib() -> dict[str, int]:
    """VmRSS (now) and VmHWM (high-water mark since the last reset), KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def settle() -> int:
    """Give freed heap back to the system, reset the high-water mark; RSS now (bytes)."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    return memory_kib()["VmRSS"] * 1024


def peak_since_settle() -> int:
    return memory_kib()["VmHWM"] * 1024


def test_image(n: int) -> tuple[np.ndarray, tuple[float, float]]:
    """(n, n) uint16: 4 x 4 bright disks (radius n/16) on uniform noise; and a disk's centre."""
    img = np.empty((n, n), np.uint16)
    period, radius = n / 4, n / 16
    rng = np.random.default_rng(0)
    rows = max(1, (8 * MIB) // (8 * n))
    xx = (np.arange(n) % period - period / 2) ** 2
    for r0 in range(0, n, rows):
        yy = ((np.arange(r0, min(n, r0 + rows)) % period - period / 2) ** 2)[:, None]
        block = img[r0:r0 + len(yy)]
        block[:] = rng.integers(900, 1100, block.shape, dtype=np.uint16)
        block[yy + xx < radius**2] += 1500
    return img, (period / 2 + period, period / 2 + 2 * period)


def child(n: int, threads: int) -> dict:
    """One measurement in this (fresh) process; the numbers as a dict."""
    import torch

    from napari_sam2.engine import ImagePredictor
    from napari_sam2.model import load_model

    torch.set_num_threads(threads)
    pred = ImagePredictor(load_model("sam2_demo"))
    warm = np.random.default_rng(1).integers(0, 4000, (64, 64), dtype=np.uint16)
    pred.set_image(warm)
    pred.predict(points=[[32, 32]], labels=[1])
    image, click = test_image(n)

    before = settle()
    t0 = time.perf_counter()
    emb = pred.encode(image)
    encode_s = time.perf_counter() - t0
    encode_extra = peak_since_settle() - before
    pred.embedding = emb

    before = settle()
    t0 = time.perf_counter()
    p = pred.predict(points=[click], labels=[1])
    click_s = time.perf_counter() - t0
    click_extra = peak_since_settle() - before
    return {"n": n, "image": int(image.nbytes), "masks": int(p.masks.nbytes),
            "encode_extra": encode_extra, "click_extra": click_extra,
            "encode_s": encode_s, "click_s": click_s, "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mask_pixels": int(p.masks[p.best_index].sum())}


def run_child(src: str, n: int, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n),
           "--threads", str(threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child for {n}x{n} with PYTHONPATH={src} failed "
                         f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    here = Path(__file__).resolve().parents[1] / "src"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000],
                    help="image sides N (N x N uint16); 20000 needs ~2 GB (~8 GB old code)")
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per size and code")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    ap.add_argument("--src", default=str(here), help="our code (default: this checkout)")
    ap.add_argument("--baseline-src", default=None,
                    help="another checkout's src/ to measure in the same run (the old code)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads)))
        return

    codes = [("ours", args.src)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    first = run_child(args.src, 64, args.threads)
    print(f"machine: {describe()}; torch {first['torch']}; {first['threads']} torch thread(s) "
          f"per child; load average {os.getloadavg()[0]:.1f}")
    print("peak extra RSS over the process's RSS before the call (fresh process each time; "
          f"medians of {args.repeats}); model sam2_demo; image N x N uint16; click = 3 masks")
    print(f"{'code':9} {'N':>6} {'image':>9} {'encode extra':>13} {'click extra':>12} "
          f"{'(masks)':>9} {'click-masks':>12} {'x image':>8} {'encode s':>9} {'click s':>8}")
    for n in args.sizes:
        runs: dict[str, list[dict]] = {name: [] for name, _ in codes}
        for _ in range(args.repeats):
            for name, src in codes:  # alternate, so load changes hit both alike
                runs[name].append(run_child(src, n, args.threads))
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("encode_extra", "click_extra", "encode_s", "click_s")}
            img, masks = rs[0]["image"], rs[0]["masks"]
            print(f"{name:9} {n:>6} {img / MIB:>7.0f}Mi {med['encode_extra'] / MIB:>11.0f}Mi "
                  f"{med['click_extra'] / MIB:>10.0f}Mi {masks / MIB:>7.0f}Mi "
                  f"{(med['click_extra'] - masks) / MIB:>10.0f}Mi "
                  f"{med['click_extra'] / img:>8.2f} {med['encode_s']:>9.2f} "
                  f"{med['click_s']:>8.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
