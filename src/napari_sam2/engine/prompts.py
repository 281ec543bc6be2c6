"""Validation of user prompts in (row, col) frame pixels (numpy only).

Each checker returns a clean float64 / int64 array (or None) or raises a ValueError/TypeError
that says what to pass, so that nothing malformed reaches torch. Shared by the image predictor
and the tracking session.

Coordinates must lie in the image's extent: -0.5 <= row <= H and -0.5 <= col <= W. napari puts
pixel centres at integers (pixel i spans i - 0.5 .. i + 0.5); the far edges H and W are also
accepted so that a whole-image box (0, 0, H, W) works.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EDGE = 0.5


def _in_extent(rc: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    h, w = hw
    return (rc[..., 0] >= -EDGE) & (rc[..., 0] <= h) & (rc[..., 1] >= -EDGE) & (rc[..., 1] <= w)


def _as_float_array(value, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be numbers, got {value!r}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values: {value!r}")
    return arr


def check_points(points, labels, hw: Sequence[int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate click points and their labels.

    Args:
        points: (N, 2) (row, col), a single (2,) point, or None (an empty (0, 2) also counts
            as no points).
        labels: (N,) with values 1 (foreground) or 0 (background); bools allowed.
        hw: (H, W) of the image.

    Returns:
        (points (N, 2) float64, labels (N,) int64), or (None, None).
    """
    if points is None:
        if labels is not None and np.size(labels) > 0:
            raise ValueError("labels were given without points: pass points=(N, 2) (row, col)")
        return None, None
    pts = _as_float_array(points, "points")
    if pts.ndim == 1 and pts.shape == (2,):
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) as (row, col) pairs, got {pts.shape}")
    if pts.shape[0] == 0:
        if labels is not None and np.size(labels) > 0:
            raise ValueError("labels were given but points is empty")
        return None, None
    if labels is None:
        raise ValueError(
            f"labels are required with points: pass {pts.shape[0]} labels, 1 = foreground, "
            "0 = background"
        )
    lab = np.asarray(labels)
    if lab.dtype == bool:
        lab = lab.astype(np.int64)
    if not (np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.floating)):
        raise TypeError(f"labels must be integers 0 or 1, got dtype {lab.dtype}")
    lab = lab.reshape(-1) if lab.ndim == 0 else lab
    if lab.ndim != 1 or lab.shape[0] != pts.shape[0]:
        raise ValueError(
            f"got {pts.shape[0]} points but labels of shape {lab.shape}: pass one label per point"
        )
    if not np.isin(lab, (0, 1)).all():
        raise ValueError(
            f"labels must be 1 (foreground) or 0 (background), got {np.unique(lab).tolist()}; "
            "pass boxes with box="
        )
    outside = ~_in_extent(pts, hw)
    if outside.any():
        bad = pts[outside][0].tolist()
        raise ValueError(
            f"point (row, col) = {tuple(bad)} is outside the {hw[0]}x{hw[1]} image: rows must be "
            f"in [-0.5, {hw[0]}] and columns in [-0.5, {hw[1]}] (points are (row, col))"
        )
    return pts, lab.astype(np.int64)


def check_box(box, hw: Sequence[int]) -> np.ndarray | None:
    """Validate a box (r0, c0, r1, c1); returns it as float64 (4,) or None."""
    if box is None:
        return None
    b = _as_float_array(box, "box coordinates")
    if b.shape == (2, 2):
        b = b.reshape(4)
    if b.shape != (4,):
        raise ValueError(
            f"box must be 4 numbers (row0, col0, row1, col1) for one box, got shape {b.shape}"
        )
    r0, c0, r1, c1 = b
    if r1 < r0 or c1 < c0:
        raise ValueError(
            f"box {tuple(b.tolist())} has row1 < row0 or col1 < col0: pass "
            "(min_row, min_col, max_row, max_col)"
        )
    if not _in_extent(b.reshape(2, 2), hw).all():
        raise ValueError(
            f"box {tuple(b.tolist())} reaches outside the {hw[0]}x{hw[1]} image: rows must be in "
            f"[-0.5, {hw[0]}] and columns in [-0.5, {hw[1]}] (clip it, e.g. with np.clip)"
        )
    return b


def check_mask_input(mask_input, shape: tuple[int, int]) -> np.ndarray | None:
    """Validate a low-res mask-logit prompt; returns (h4, w4) float32 or None.

    Accepts (h4, w4), (1, h4, w4) or (1, 1, h4, w4) real-valued logits, numpy or torch.
    """
    if mask_input is None:
        return None
    if hasattr(mask_input, "detach"):  # torch tensor
        mask_input = mask_input.detach().float().cpu().numpy()
    m = np.asarray(mask_input)
    if m.dtype == bool:
        raise TypeError(
            "mask_input takes logits (float), not a bool mask: pass a previous prediction's "
            "low_res_logits[i]"
        )
    m = _as_float_array(m, "mask_input values")
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.shape != tuple(shape):
        raise ValueError(
            f"mask_input must be low-res logits of shape {tuple(shape)} (a previous "
            f"prediction's low_res_logits[i]), got {np.shape(mask_input)}"
        )
    return m.astype(np.float32)
