"""Image-predictor speed: encoder time and click latency (decoder only, embedding cached).

    .venv/bin/python benchmarks/bench_image.py                       # tiny, CPU, float32
    .venv/bin/python benchmarks/bench_image.py --variants tiny small base_plus large
    .venv/bin/python benchmarks/bench_image.py --device cuda          # bf16 autocast on CUDA

Prints the machine, then per variant the median (and min/max) of:

* ``encode``: ``ImagePredictor.encode`` on a 1024 x 1024 RGB uint8 image (preprocessing +
  image encoder), as Meta's ``set_image``;
* ``click``: ``ImagePredictor.predict`` with one positive point, multimask on (prompt encoder,
  mask decoder, upsampling of the 3 masks to the image size, thresholding, copy to numpy);
* ``click+box``: a box and a negative point, single-mask output;
* the same click through ``Sam2Model.prompt_and_decode`` (``fast_decoder=False``), the
  straightforward decoder, as the in-run baseline.

Weights are random (``build_model``); speed does not depend on their values. Meta's numbers
measured on the 2-core CPU machines of this project (issue 2) are printed as the baseline.

With ``--meta-path DIR`` (a local copy of Meta's code, see ``meta_baseline.py``) Meta's model
is timed in the same run on the same input, the two alternating call by call so that a change
of machine load hits both alike, and the ratio ours / Meta's is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from _cpu import describe

from napari_sam2.engine import ImagePredictor, choose_device
from napari_sam2.model import build_model

# Meta's SAM2ImagePredictor on the project's 2-core CPU machines, float32 (issue 2).
META_CPU_ENCODE_S = {"tiny": 1.6, "small": 1.8, "base_plus": 3.2, "large": 7.1}
META_CPU_CLICK_MS = 53.0



def timed(fn, repeats: int, warmup: int, sync) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of each call."""
    for _ in range(warmup):
        fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def fmt(ts: tuple[list[float], list[float]], unit: float, suffix: str) -> str:
    wall, cpu = ts
    med = statistics.median(wall) * unit
    return (f"{med:8.1f} {suffix} (min {min(wall) * unit:.1f}, max {max(wall) * unit:.1f}, "
            f"n={len(wall)}; CPU time {statistics.median(cpu) * unit:.1f} {suffix.strip()})")


def main() -> None:
    ap = argparse.ArgumentParser(description="Image encoder and click latency benchmark")
    ap.add_argument("--variants", nargs="+", default=["tiny"],
                    help="tiny small base_plus large (sam2.1_hiera_*), or full names")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--image", type=int, nargs=2, default=(1024, 1024), metavar=("H", "W"))
    ap.add_argument("--encode-repeats", type=int, default=5)
    ap.add_argument("--click-repeats", type=int, default=50)
    ap.add_argument("--float32", action="store_true", help="no bf16 autocast on CUDA")
    ap.add_argument("--meta-path", default=None,
                    help="local copy of Meta's sam2 code: time it side by side (CPU, float32)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"machine: {describe()}; torch {torch.__version__}; "
          f"{torch.get_num_threads()} torch threads; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    h, w = args.image
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    print(f"image {h}x{w} RGB uint8; medians over repeats after warm-up; load average "
          f"{os.getloadavg()[0]:.1f} (other processes inflate wall times; CPU time is the "
          f"process's own, summed over its threads)")

    for v in args.variants:
        name = v if v.startswith("sam2") or v in ("medsam2", "sam2_demo") else f"sam2.1_hiera_{v}"
        torch.manual_seed(0)
        model = build_model(name, device=device)
        pred = ImagePredictor(model, bfloat16=False if args.float32 else None)
        emb = pred.encode(image)
        pred.embedding = emb
        enc = timed(lambda: pred.encode(image), args.encode_repeats, 1, sync)
        click = timed(lambda: pred.predict(points=[[h / 2, w / 3]], labels=[1]),
                      args.click_repeats, 5, sync)
        plain = ImagePredictor(model, bfloat16=pred.bfloat16, fast_decoder=False)
        plain.embedding = emb
        click_plain = timed(lambda: plain.predict(points=[[h / 2, w / 3]], labels=[1]),
                            args.click_repeats, 5, sync)
        box = (h / 4, w / 4, h / 2, w / 2)
        boxpt = timed(lambda: pred.predict(box=box, points=[[h / 3, w / 3]], labels=[0],
                                           multimask_output=False),
                      args.click_repeats, 5, sync)
        short = name.replace("sam2.1_hiera_", "")
        print(f"\n{name}  (S={model.config.image_size}, embedding {emb.nbytes / 2**20:.0f} MiB)")
        print(f"  encode     {fmt(enc, 1.0, 's ')}")
        print(f"  click      {fmt(click, 1e3, 'ms')}")
        print(f"  click+box  {fmt(boxpt, 1e3, 'ms')}")
        print(f"  click via Sam2Model.prompt_and_decode (fast_decoder=False)  "
              f"{fmt(click_plain, 1e3, 'ms')}")
        if device.type == "cpu" and short in META_CPU_ENCODE_S:
            print(f"  baseline (Meta, 2-core CPU, issue 2): encode "
                  f"{META_CPU_ENCODE_S[short]:.1f} s, click {META_CPU_CLICK_MS:.0f} ms")
        if args.meta_path:
            side_by_side(args, name, pred, image, sync)
        del model, pred, plain, emb


def alternate(ours, theirs, repeats: int, warmup: int, sync):
    """Time ``ours`` and ``theirs`` call by call in turn: ((wall, cpu), (wall, cpu))."""
    a, b = ([], []), ([], [])
    for _ in range(warmup):
        ours()
        theirs()
    for _ in range(repeats):
        for fn, out in ((ours, a), (theirs, b)):
            wall, cpu = timed(fn, 1, 0, sync)
            out[0].extend(wall)
            out[1].extend(cpu)
    return a, b


def side_by_side(args, name: str, pred: ImagePredictor, image: np.ndarray, sync) -> None:
    """Our encoder and click against Meta's model, same input, alternating."""
    from napari_sam2.engine import transforms as T

    from meta_baseline import MetaImage, import_meta

    if name.startswith("sam2") and "hiera" in name:
        meta = MetaImage(import_meta(args.meta_path), name, device=str(pred.device))
    else:
        print(f"  (no Meta baseline for {name})")
        return
    h, w = image.shape[:2]
    x = T.preprocess_image(T.check_image(image), pred.image_size, device=pred.device)
    enc = alternate(lambda: pred.encode(image), lambda: meta.encode(x),
                    args.encode_repeats, 1, sync)
    click = alternate(lambda: pred.predict(points=[[h / 2, w / 3]], labels=[1]),
                      lambda: meta.click((w / 3, h / 2), (h, w)), args.click_repeats, 5, sync)
    print("  side by side with Meta's code (alternating calls; Meta's encode starts from the "
          "normalised tensor):")
    for label, (ours, theirs), unit, suffix in (("encode", enc, 1.0, "s "),
                                                ("click ", click, 1e3, "ms")):
        ratio = statistics.median(ours[0]) / statistics.median(theirs[0])
        print(f"    {label} ours  {fmt(ours, unit, suffix)}")
        print(f"    {label} Meta  {fmt(theirs, unit, suffix)}")
        print(f"    {label} ours / Meta = {ratio:.2f}")


if __name__ == "__main__":
    main()
