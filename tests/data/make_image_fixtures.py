"""Derive tests/data/golden_image_prompts.npz from Meta's image-predictor golden file.

Run from the repository root (the only place that reads ../shared):

    .venv/bin/python tests/data/make_image_fixtures.py \
        [--golden ../shared/reference/golden/golden_image_sam2.1_tiny.npz]

The golden file (28 MB) holds the outputs of Meta's ``SAM2ImagePredictor`` with the
deterministic reference weights of ``sam2.1_hiera_tiny`` on a synthetic 480 x 640 RGB image.
The fixture keeps what the parity test needs, about 2 MB:

* ``image`` (480, 640, 3) uint8;
* per case ``<case>__points`` (N, 2) (row, col), ``__labels`` (N,), ``__box`` (r0, c0, r1, c1)
  or absent, ``__multimask`` bool, ``__mask_input_from`` (the case whose single-mask output
  was fed back as ``mask_input``) or absent. Meta's prompts are (x, y); they are swapped here;
* per case the reference ``__lowres_q`` int16 with ``__lowres_scale`` (logits = q * scale,
  scale = max|logits| / 32767, so the rounding error is at most 1.6e-5 x max|logits|, far
  inside the 1e-3 budget; float16 would spend half of it), ``__ious`` float32,
  ``__masks_bits`` (np.packbits of the (M, H, W) bool masks) and ``__sparse`` float32;
* ``input_image_sub16`` (1, 3, 64, 64): every 16th row and column of the normalised model
  input Meta's predictor computed (checks our preprocessing);
* ``image_embed_c0to3`` (1, 4, 64, 64) and ``dense_pe_c0to3`` float32 for diagnosis.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_GOLDEN = HERE.parents[1] / ".." / "shared" / "reference" / "golden"
DEFAULT_GOLDEN = DEFAULT_GOLDEN / "golden_image_sam2.1_tiny.npz"
OUT = HERE / "golden_image_prompts.npz"

CASES = (
    "a_point_mm",
    "a_point_single",
    "b_box_mm",
    "b_box_single",
    "c_posneg_mm",
    "c_posneg_single",
    "d_mask_mm",
    "d_mask_single",
    "e_boxpt_single",
)


def xy_to_rc(points_xy) -> np.ndarray:
    return np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)[:, ::-1].copy()


def prompts_of(case: str, scenarios: dict) -> dict:
    """The prompt of a case in our (row, col) convention."""
    base = case.rsplit("_", 1)[0]  # e.g. "a_point"
    out: dict = {"multimask": not case.endswith("_single")}
    if base in ("a_point", "c_posneg"):
        sc = scenarios[base]
        out["points"] = xy_to_rc(sc["point_coords"])
        out["labels"] = np.asarray(sc["point_labels"], np.int64)
    elif base == "b_box":
        x0, y0, x1, y1 = scenarios["b_box"]["box"]
        out["box"] = np.array([y0, x0, y1, x1], np.float64)
    elif base == "d_mask":  # c_posneg points + mask input = c_posneg_single's low-res logits
        sc = scenarios["c_posneg"]
        out["points"] = xy_to_rc(sc["point_coords"])
        out["labels"] = np.asarray(sc["point_labels"], np.int64)
        out["mask_input_from"] = np.array("c_posneg_single")
    elif base == "e_boxpt":  # box b + point (x=480, y=200) label 0
        x0, y0, x1, y1 = scenarios["b_box"]["box"]
        out["box"] = np.array([y0, x0, y1, x1], np.float64)
        out["points"] = xy_to_rc([[480.0, 200.0]])
        out["labels"] = np.array([0], np.int64)
    else:
        raise KeyError(case)
    return out


def quantize(x: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.abs(x).max()) / 32767.0
    q = np.round(x.astype(np.float64) / scale).astype(np.int16)
    return q, scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    g = np.load(args.golden)
    meta = json.loads(str(g["meta"]))
    # The descriptions of d and e are fixed in prompts_of; fail loudly if they change.
    assert "c_posneg points + mask_input=c_posneg_single" in meta["extra"]["d_mask"]
    assert "box b + point (480,200) label 0" in meta["extra"]["e_boxpt_single"]

    out: dict[str, np.ndarray] = {"image": g["image"]}
    report = []
    for case in CASES:
        for k, v in prompts_of(case, meta["scenarios"]).items():
            out[f"{case}__{k}"] = np.asarray(v)
        low = g[f"{case}_lowres"]
        q, scale = quantize(low)
        out[f"{case}__lowres_q"] = q
        out[f"{case}__lowres_scale"] = np.float64(scale)
        out[f"{case}__ious"] = g[f"{case}_ious"].astype(np.float32)
        masks = g[f"{case}_masks"]
        out[f"{case}__masks_shape"] = np.array(masks.shape, np.int64)
        out[f"{case}__masks_bits"] = np.packbits(masks.ravel())
        out[f"{case}__sparse"] = g[f"{case}_sparse"].astype(np.float32)
        f16_err = np.abs(low.astype(np.float16).astype(np.float32) - low).max()
        q_err = np.abs(q * scale - low).max()
        top = np.abs(low).max()
        report.append(
            f"{case:16s} max|ref| {top:7.3f}  int16 err/max {q_err / top:.1e}"
            f"  float16 err/max {f16_err / top:.1e}"
        )
    out["input_image_sub16"] = g["input_image"][:, :, ::16, ::16].astype(np.float32)
    out["image_embed_c0to3"] = g["image_embed"][:, :4].astype(np.float32)
    out["dense_pe_c0to3"] = g["dense_pe"][:, :4].astype(np.float32)
    out["meta"] = np.array(
        json.dumps(
            {
                "source": "golden_image_sam2.1_tiny.npz (Meta's SAM2ImagePredictor)",
                "weights": meta["ckpt"],
                "variant": "sam2.1_hiera_tiny",
                "coords": "(row, col) image pixels; boxes (r0, c0, r1, c1)",
                "cases": list(CASES),
            }
        )
    )
    np.savez_compressed(args.out, **out)
    print("\n".join(report))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
