"""Prompt simulation for training: clicks inside a mask, noisy boxes, corrective clicks.

All functions work on a batch of objects at the model's input resolution and return prompt
coordinates as (x, y) in model-input pixels (the convention of ``Sam2Model.run_sam_heads``).
Randomness comes from an explicit ``torch.Generator`` so that a run is reproducible.
"""

from __future__ import annotations

import torch

__all__ = ["PROMPT_MASK", "PROMPT_CLICK", "PROMPT_BOX", "check_prompt_probs",
           "choose_prompt_types", "sample_points_inside", "boxes_from_masks",
           "sample_corrective_points"]

PROMPT_MASK, PROMPT_CLICK, PROMPT_BOX = 0, 1, 2


def check_prompt_probs(probs: tuple[float, float, float], hint: str = "") -> None:
    """Raise ValueError unless the (mask, click, box) probabilities are >= 0, not all 0."""
    if min(probs) < 0 or sum(probs) <= 0:
        raise ValueError(f"prompt probabilities (mask, click, box) must be >= 0 and not all 0, "
                         f"got {tuple(probs)}{hint}")


def choose_prompt_types(n: int, probs: tuple[float, float, float], generator: torch.Generator
                        ) -> torch.Tensor:
    """Draw ``n`` prompt kinds with probabilities (mask, click, box). -> (n,) int64."""
    check_prompt_probs(probs)
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=generator)


def _uniform_pixel(region: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                              torch.Tensor]:
    """One uniformly drawn pixel of each (H, W) region. -> (xy (B,2) float, found (B,) bool)."""
    b, h, w = region.shape
    noise = torch.rand(b, h * w, generator=generator, device="cpu").to(region.device)
    score = noise * region.reshape(b, -1).float()
    idx = score.argmax(dim=1)
    found = region.reshape(b, -1).any(dim=1)
    xy = torch.stack([(idx % w).float(), (idx // w).float()], dim=1)
    return xy, found


def sample_points_inside(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One positive click uniformly inside each mask.

    Args:
        masks: (B, H, W) bool.
    Returns:
        coords (B, 1, 2) float (x, y); an empty mask gives (0, 0) (callers drop such objects).
    """
    xy, _ = _uniform_pixel(masks.bool(), generator)
    return xy[:, None]


def boxes_from_masks(masks: torch.Tensor, generator: torch.Generator, *, noise: float = 0.1,
                     max_noise_px: float = 20.0) -> torch.Tensor:
    """Bounding boxes of the masks, each corner jittered by ``noise`` x the box side.

    Args:
        masks: (B, H, W) bool, none empty.
    Returns:
        coords (B, 2, 2) float: top-left then bottom-right corner, (x, y) each (labels 2, 3).
    """
    b, h, w = masks.shape
    rows = masks.any(dim=2)  # (B, H)
    cols = masks.any(dim=1)  # (B, W)
    ar_h = torch.arange(h, device=masks.device).float()
    ar_w = torch.arange(w, device=masks.device).float()
    big = float(max(h, w) + 1)
    y0 = torch.where(rows, ar_h, big).amin(1)
    y1 = torch.where(rows, ar_h, -1.0).amax(1)
    x0 = torch.where(cols, ar_w, big).amin(1)
    x1 = torch.where(cols, ar_w, -1.0).amax(1)
    box = torch.stack([x0, y0, x1, y1], dim=1)
    if noise > 0:
        side = torch.stack([x1 - x0, y1 - y0, x1 - x0, y1 - y0], dim=1).clamp(min=1)
        scale = (side * noise).clamp(max=max_noise_px)
        jitter = torch.randn(b, 4, generator=generator).to(masks.device) * scale
        box = box + jitter
    box[:, 0::2] = box[:, 0::2].clamp(0, w - 1)
    box[:, 1::2] = box[:, 1::2].clamp(0, h - 1)
    lo = torch.minimum(box[:, :2], box[:, 2:])
    hi = torch.maximum(box[:, :2], box[:, 2:])
    return torch.stack([lo, hi], dim=1)


def sample_corrective_points(pred: torch.Tensor, gt: torch.Tensor, generator: torch.Generator
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """A corrective click drawn uniformly from each object's error region.

    A missed pixel (false negative) gives a positive click, a wrong pixel (false positive) a
    negative one. Objects without any error get a padding point (label -1), which the prompt
    encoder ignores.

    Args:
        pred: (B, H, W) bool current prediction.
        gt: (B, H, W) bool ground truth.
    Returns:
        coords (B, 1, 2) float (x, y) and labels (B, 1) int64 in {1, 0, -1}.
    """
    pred, gt = pred.bool(), gt.bool()
    error = pred ^ gt
    xy, found = _uniform_pixel(error, generator)
    b, h, w = gt.shape
    flat = (xy[:, 1].long() * w + xy[:, 0].long())
    is_fn = gt.reshape(b, -1).gather(1, flat[:, None]).squeeze(1)
    labels = torch.where(found, is_fn.long(), torch.full_like(flat, -1))
    return xy[:, None], labels[:, None]
