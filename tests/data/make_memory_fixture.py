"""Derive tests/data/golden_memory_path.npz from Meta's video golden run (sam2.1_hiera_tiny).

Run from the repository root:  python tests/data/make_memory_fixture.py
Reads ../shared/reference/golden/golden_video_sam2.1_tiny.npz. Keeps what the model-level
memory path needs for frames 0 (click, conditioning frame) and 1 (tracked from frame 0's
memory and pointer) of object 1: the two 1024² uint8 frames the video predictor fed in, the
frame-0 low-res logits, object score and pointer, and the frame-1 outputs, plus a channel
subset of the stored (bfloat16) memories of both frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1].parent / "shared" / "reference" / "golden" / "golden_video_sam2.1_tiny.npz"
OUT = HERE / "golden_memory_path.npz"
MEM_CHANNELS = np.arange(0, 64, 4)


def main() -> None:
    z = np.load(SRC)
    assert bool(z["images_match_formula"])
    assert list(z["fwd1_frames"][:2]) == [0, 1] and bool(z["fwd1_is_cond"][0, 0])
    out = {
        "frames_uint8": z["frames_resized_uint8"][:2],  # (2, 1024, 1024, 3)
        "lowres0": z["fwd1_lowres"][0, 0],  # (256, 256) click output, frame 0, object 1
        "objscore0": z["fwd1_objscore"][0, 0],
        "objptr0": z["fwd1_objptr"][0, 0],  # (256,)
        "lowres1": z["fwd1_lowres"][1, 0],
        "objscore1": z["fwd1_objscore"][1, 0],
        "objptr1": z["fwd1_objptr"][1, 0],
        "mem_channels": MEM_CHANNELS,
    }
    for f in (0, 1):
        mem = z[f"maskmem_f{f}_obj1"]
        out[f"maskmem{f}"] = mem[:, MEM_CHANNELS]
        out[f"maskmem{f}_max_abs"] = np.float64(np.abs(mem).max())
    pe = z["maskmem_pos_enc"]
    out["maskmem_pos_enc"] = pe[:, MEM_CHANNELS]
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
