"""Geometry for automatic segmentation: point grids, crop boxes, mask IoU and mask NMS.

Pure numpy / torch helpers with no model; ``automatic.py`` composes them.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def point_grid(n: int, shape: tuple[int, int]) -> np.ndarray:
    """(n*n, 2) float (row, col) points at the centres of an n x n grid of equal cells over
    a (H, W) frame (napari pixel centres at integers, so the frame spans -0.5 .. H - 0.5)."""
    H, W = shape
    frac = (np.arange(n, dtype=np.float64) + 0.5) / n
    rows, cols = np.meshgrid(frac * H - 0.5, frac * W - 0.5, indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def crop_boxes(shape: tuple[int, int], layers: int, overlap: float
               ) -> list[tuple[int, int, int, int, int]]:
    """Crops of a (H, W) frame: layer 0 is the whole frame, layer k >= 1 a 2^k x 2^k grid of
    overlapping crops (each overlapping its neighbours by ``overlap`` x the crop side).

    Returns:
        [(layer, r0, c0, r1, c1)] with end-exclusive pixel bounds.
    """
    H, W = shape
    out = [(0, 0, 0, H, W)]
    for layer in range(1, layers + 1):
        n = 2 ** layer
        starts = []
        for size in (H, W):
            side = math.ceil(size / (n - (n - 1) * overlap))  # n sides minus n-1 overlaps
            step = max(1, round(side * (1 - overlap)))
            s = [min(k * step, size - side) for k in range(n)]
            starts.append([(max(0, a), min(size, a + side)) for a in s])
        out += [(layer, r0, c0, r1, c1) for r0, r1 in starts[0] for c0, c1 in starts[1]]
    return out


def mask_overlaps(masks: torch.Tensor, *, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise intersections of N bool masks (N, P) (flattened) -> ((N, N) float32 pixel
    counts, (N,) areas), in row chunks of ``chunk`` so that the float copy held at any time is
    (chunk, P)."""
    n = masks.shape[0]
    if n == 0:
        return torch.zeros(0, 0), torch.zeros(0)
    areas = masks.sum(1).float()
    out = torch.empty(n, n)
    ft = masks.t().float()  # (P, N)
    for s in range(0, n, chunk):
        out[s:s + chunk] = masks[s:s + chunk].float() @ ft
    return out, areas


def mask_iou(masks: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    """Pairwise IoU of N bool masks (N, P) (flattened) -> (N, N) float32."""
    inter, areas = mask_overlaps(masks, chunk=chunk)
    union = areas[:, None] + areas[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on masks: walk the masks from the best score down and
    keep one unless its IoU with an already kept mask exceeds ``iou_threshold``.

    Args:
        masks: (N, h, w) or (N, P) bool.
        scores: (N,) higher is better.
    Returns:
        (K,) int64 indices of the kept masks, best first.
    """
    n = masks.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    iou = mask_iou(masks.reshape(n, -1)).numpy()
    order = np.argsort(-scores.float().numpy(), kind="stable")
    kept: list[int] = []
    for i in order:
        if not kept or iou[i, kept].max() <= iou_threshold:
            kept.append(int(i))
    return np.asarray(kept, np.int64)


def downsample_masks(masks: torch.Tensor, side: int) -> torch.Tensor:
    """(N, h, w) bool -> bool masks whose longer side is at most ``side`` (a pixel is set
    when at least half of its block is), the resolution NMS compares at."""
    n, h, w = masks.shape
    f = max(1, math.ceil(max(h, w) / side))
    if f == 1:
        return masks
    x = torch.nn.functional.avg_pool2d(masks[:, None].float(), f, ceil_mode=True)
    return x[:, 0] >= 0.5


def unions_of_others(masks: torch.Tensor, *, contained: float = 0.8, covered: float = 0.8,
                     disjoint: float = 0.2) -> np.ndarray:
    """Which masks are mostly the union of two or more other, nearly disjoint masks of the
    set (two touching cells taken together as one): for mask i, the smaller masks each lying
    ``contained`` inside it are taken best-covering first while each overlaps those already
    taken by less than ``disjoint`` of its own area; i is a union when two or more are taken
    and together they cover ``covered`` of it.

    Args:
        masks: (N, h, w) or (N, P) bool.
    Returns:
        (N,) bool.
    """
    n = masks.shape[0]
    out = np.zeros(n, bool)
    if n < 3:
        return out
    flat = masks.reshape(n, -1)
    inter, areas = (t.numpy() for t in mask_overlaps(flat))
    for i in range(n):
        inside = [j for j in range(n) if j != i and areas[j] > 0 and areas[j] < areas[i]
                  and inter[i, j] >= contained * areas[j]]
        if len(inside) < 2:
            continue
        inside.sort(key=lambda j: -areas[j])
        taken: list[int] = []
        for j in inside:
            if all(inter[j, k] < disjoint * areas[j] for k in taken):
                taken.append(j)
        if len(taken) < 2:
            continue
        union = flat[taken].any(0) & flat[i]
        out[i] = bool(union.sum() >= covered * areas[i])
    return out
