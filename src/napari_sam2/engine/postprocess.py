"""Hole filling and sprinkle removal on mask logits, on every device.

Meta's code does this with a CUDA-only kernel and silently skips it elsewhere; here the
connected components come from scikit-image on the CPU (a 256 x 256 map costs well under a
millisecond to label), so CPU, CUDA and MPS give the same result. Both are off by default,
which reproduces Meta's CPU outputs.

Components are 8-connected. "Background" is logit <= threshold, "foreground" logit >
threshold, with threshold 0 as everywhere in SAM 2.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.measure import label as _label

MASK_THRESHOLD = 0.0


def small_components(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of the 8-connected True components with area <= max_area.

    Args:
        binary: (..., h, w) bool; each trailing 2-D map is labelled separately.
        max_area: largest component area (pixels) that counts as small.

    Returns:
        bool array of the same shape.
    """
    flat = binary.reshape(-1, *binary.shape[-2:])
    out = np.zeros_like(flat, dtype=bool)
    for i, m in enumerate(flat):
        if not m.any():
            continue
        lab = _label(m, connectivity=2)
        areas = np.bincount(lab.ravel())
        small = areas <= max_area
        small[0] = False  # label 0 is the complement, never a component
        out[i] = small[lab]
    return out.reshape(binary.shape)


def _where_small(
    logits: torch.Tensor, binary: torch.Tensor, max_area: int, value: float
) -> torch.Tensor:
    hit = small_components(binary.detach().cpu().numpy(), int(max_area))
    if not hit.any():
        return logits
    hit_t = torch.from_numpy(hit).to(logits.device)
    return torch.where(hit_t, float(value), logits)


def fill_holes(logits: torch.Tensor, max_area: int, *, fill_value: float = 10.0) -> torch.Tensor:
    """Set background components (logit <= 0) of area <= max_area to ``fill_value``.

    Args:
        logits: (..., h, w) float mask logits.
        max_area: in pixels of ``logits``; 0 turns the step off.
        fill_value: the new logit (the image predictor uses +10, Meta's video predictor 0.1).

    Returns:
        a tensor like ``logits`` (the input itself when nothing changes).
    """
    if max_area <= 0:
        return logits
    return _where_small(logits, logits <= MASK_THRESHOLD, max_area, fill_value)


def remove_sprinkles(
    logits: torch.Tensor, max_area: int, *, fill_value: float = -10.0
) -> torch.Tensor:
    """Set foreground components (logit > 0) of area <= max_area to ``fill_value``."""
    if max_area <= 0:
        return logits
    return _where_small(logits, logits > MASK_THRESHOLD, max_area, fill_value)


def postprocess_logits(
    logits: torch.Tensor, *, max_hole_area: int = 0, max_sprinkle_area: int = 0
) -> torch.Tensor:
    """The image predictor's clean-up of low-res logits, as Meta's ``postprocess_masks``.

    Holes become +10 and sprinkles -10. Both sets of components are found on the *input*
    logits (so a filled hole is never removed again as a sprinkle), as Meta does.

    Args:
        logits: (B, M, h, w) low-res mask logits.

    Returns:
        (B, M, h, w) logits.
    """
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return logits
    out = logits
    if max_hole_area > 0:
        out = _where_small(out, logits <= MASK_THRESHOLD, max_hole_area, MASK_THRESHOLD + 10.0)
    if max_sprinkle_area > 0:
        out = _where_small(out, logits > MASK_THRESHOLD, max_sprinkle_area, MASK_THRESHOLD - 10.0)
    return out
