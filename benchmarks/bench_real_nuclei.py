"""The demo model on real fluorescence nuclei that nobody here made (issue 22).

    .venv/bin/python benchmarks/bench_real_nuclei.py                       # shipped sam2_demo
    .venv/bin/python benchmarks/bench_real_nuclei.py --checkpoint new.safetensors --compare shipped

Data: the test images that ship inside the ``stardist`` wheel on PyPI (BSD-3-Clause), fetched
once with ``pip download stardist==0.9.2 --no-deps`` into ``--cache`` (only the package index is
needed) and read from the wheel, never installed:

* ``img2d.tif`` / ``mask2d.tif``: a 512 x 512 fluorescence image of about 125 nuclei, 15-25 px
  across, from the 2018 Data Science Bowl, with its instance masks;
* ``img3d.tif`` / ``mask3d.tif``: a 31 x 61 x 57 stack of nuclei (StarDist's synthetic 3D
  example, not drawn by our generators) with instance masks.

Figures (one interior click per object, the same protocol as ``bench_quality``'s cases):

* 2D click IoU on the whole 512 px frame (nuclei are 8-12 px on ``sam2_demo``'s input), and with
  the image predictor's ``window="auto"`` (native resolution, docs/image_predictor.md);
* z: each nucleus clicked on its largest slice and tracked up and down the stack: the share of
  slices outside it predicted empty and its 3D IoU, with the plugin's early stop along z (3
  absent slices) and without it (the model's own decisions), each with every slice scaled by
  its own minimum and maximum (the engine's and the CLI's default) and with one range for the
  stack (what the plugin does: napari's contrast limits, by default the data's range);
* motion: a 256 px crop of the 2D image moved by 0 and by 4 px per frame over 16 frames (a
  stage drift over real texture), its nuclei clicked on frame 0 and tracked: J&F.

Small sets of real data: the intervals are over objects (2D, z) or over nuclei (motion).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

WHEEL_VERSION = "0.9.2"
FILES = ("img2d", "mask2d", "img3d", "mask3d")


def fetch(cache: Path) -> dict[str, np.ndarray]:
    """The four test images of the stardist wheel, downloaded into ``cache`` on first use."""
    import tifffile

    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"stardist-{WHEEL_VERSION}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", f"stardist=={WHEEL_VERSION}",
               "--no-deps", "--only-binary=:all:", "--dest", str(cache), "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(cache.glob(f"stardist-{WHEEL_VERSION}-*.whl"))
        if done.returncode != 0 or not wheels:
            sys.exit(f"could not download the stardist wheel into {cache} ({done.stderr.strip()}"
                     f"); put a stardist-{WHEEL_VERSION}-*.whl there by hand and run again")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return {name: tifffile.imread(wheel.open(f"stardist/data/images/{name}.tif"))
                for name in FILES}


def _mean_ci(values) -> str:
    from napari_sam2.training.evaluate import bootstrap_ci

    values = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(values, np.ones_like(values))
    return f"{values.mean():.3f}  95% [{low:.3f}, {high:.3f}]  (n={len(values)})"


def clicks_2d(model, image, mask, window) -> list[float]:
    """IoU of one interior click per nucleus (at least 30 px) on the whole image."""
    from napari_sam2.engine.image_predictor import ImagePredictor
    from napari_sam2.training.evaluate_cases import click_masks

    return click_masks(ImagePredictor(model), image, mask, min_area=30, window=window)[0]


def moving_crop(image, mask, step: float, n_frames: int = 16, size: int = 256):
    """(T, size, size) crops of ``image`` / ``mask`` whose origin moves ``step`` px per frame
    along the diagonal (a stage drift over the real texture)."""
    frames, labels = [], []
    for t in range(n_frames):
        o = int(round(64 + step * t / np.sqrt(2)))
        frames.append(image[o:o + size, o:o + size])
        labels.append(mask[o:o + size, o:o + size])
    return np.stack(frames), np.stack(labels).astype(np.int32)


def report(name: str, model, data: dict) -> dict[str, list[float]]:
    from napari_sam2.training.evaluate_cases import track_scores, volume_scores

    print(name)
    out = {}
    start = time.perf_counter()
    out["2D click, whole frame"] = clicks_2d(model, data["img2d"], data["mask2d"], None)
    out["2D click, window auto"] = clicks_2d(model, data["img2d"], data["mask2d"], "auto")
    volume = data["img3d"]
    stack_range = (float(volume.min()), float(volume.max()))  # napari's default contrast limits
    for stop, rng in ((3, None), (None, None), (3, stack_range), (None, stack_range)):
        empties, ious = volume_scores(model, volume, data["mask3d"].astype(np.int32),
                                      stop_after_absent=stop, min_area=10, intensity_range=rng)
        tag = ("early stop 3" if stop else "no early stop") + (", stack range" if rng else "")
        out[f"z empty outside, {tag}"] = [float(e) for e in empties]
        out[f"z 3D IoU, {tag}"] = ious
    for step in (0.0, 4.0):
        images, labels = moving_crop(data["img2d"], data["mask2d"], step)
        js, fs = track_scores(model, images, labels, min_area=100)
        out[f"motion {step:g} px/frame J&F"] = [(j + f) / 2 for j, f in zip(js, fs)]
    for key, values in out.items():
        print(f"  {key:48s} {_mean_ci(values)}")
    print(f"  time {time.perf_counter() - start:.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sam2_demo")
    parser.add_argument("--checkpoint", default=None, help="weights (default: shipped)")
    parser.add_argument("--compare", default=None, metavar="WEIGHTS",
                        help="also measure these weights ('shipped' for the shipped file)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "napari-sam2" / "bench-data")
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_SAM2_BFLOAT16", "0")
    import torch

    from _cpu import describe  # benchmarks/ is on sys.path when this file is run
    from napari_sam2.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    data = fetch(args.cache)
    print(f"machine: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ours = report(f"{args.variant} ({args.checkpoint or 'shipped weights'})",
                  load_model(args.variant, args.checkpoint, device="cpu"), data)
    if args.compare:
        path = None if args.compare == "shipped" else args.compare
        other = report(f"{args.variant} ({path or 'shipped weights'})",
                       load_model(args.variant, path, device="cpu"), data)
        print("difference: first - second (same objects; 95 % paired bootstrap over objects)")
        for key in ours:
            print(f"  {key:48s} {_mean_ci(np.subtract(ours[key], other[key]))}")


if __name__ == "__main__":
    main()
