"""Derive tests/data/golden_image_backbone.npz from the reference golden image file.

Run from the repository root:  python tests/data/make_backbone_fixture.py
Reads ../shared/reference/golden/golden_image_sam2.1_tiny.npz (Meta's SAM2ImagePredictor
under the deterministic weights, sam2.1_hiera_tiny). Stores the uint8 image, the rule that
rebuilds the exact model input (checked here against the stored 12 MB tensor), a subset of
output channels of each backbone output, and each full array's max |value|.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1].parent / "shared" / "reference" / "golden" / "golden_image_sam2.1_tiny.npz"
OUT = HERE / "golden_image_backbone.npz"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# channels kept per output (each output's full max |value| is stored separately)
CHANNELS = {
    "image_embed": list(range(0, 256, 16)),
    "high_res_feat0": [0, 17],
    "high_res_feat1": [0, 21, 42],
    "dense_pe": [0, 1, 128, 255],
}


def model_input(image: np.ndarray, size: int = 1024) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, size, size): [0, 1], bilinear antialias resize, ImageNet
    normalisation (what Meta's image predictor does with torchvision)."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def main() -> None:
    z = np.load(SRC)
    meta = json.loads(str(z["meta"]))
    image = z["image"]
    ref_input = z["input_image"]
    ours = model_input(image).numpy()
    input_err = float(np.abs(ours - ref_input).max())
    print(f"input rebuild: max |ours - stored| = {input_err:.3g} "
          f"(stored max |x| {np.abs(ref_input).max():.3g})")
    out = {"image": image, "input_max_abs_err": np.float64(input_err)}
    for key, chans in CHANNELS.items():
        full = z[key]
        out[f"{key}__channels"] = np.asarray(chans, dtype=np.int64)
        out[f"{key}__values"] = full[:, chans].astype(np.float32)
        out[f"{key}__max_abs"] = np.float64(np.abs(full).max())
        out[f"{key}__shape"] = np.asarray(full.shape, dtype=np.int64)
    out["meta"] = np.asarray(json.dumps({
        "source": "golden_image_sam2.1_tiny.npz", "config": meta.get("config"),
        "ckpt": meta.get("ckpt"), "env": meta.get("env"), "input_max_abs_err": input_err,
        "note": "image_embed = vision_features + no_mem_embed",
    }))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
