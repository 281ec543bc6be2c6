"""Losses of the SAM 2 paper: focal + dice on masks (20:1), L1 on the IoU head, CE on objectness.

Only the lowest-loss mask of a multimask output is trained; the IoU head is supervised for every
predicted mask (its target is each mask's real IoU). Objects absent from a frame contribute only
the object-score loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "MaskLoss", "mask_losses", "sigmoid_focal_loss", "dice_loss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms (the paper's 20:1:1:1)."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


@dataclass
class MaskLoss:
    """Scalar loss terms (already weighted in ``total``), each averaged over objects."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor

    def detached(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in
                ("total", "focal", "dice", "iou", "object_score")}


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Per-mask focal loss, mean over pixels.

    Args:
        logits: (B, M, H, W) mask logits.
        target: (B, 1, H, W) float 0/1 (broadcast over M).
    Returns:
        (B, M).
    """
    target = target.expand_as(logits)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-mask soft dice loss ``1 - (2|p t| + 1) / (|p| + |t| + 1)``, shapes as in focal. -> (B, M)."""
    prob = logits.sigmoid().flatten(2)
    target = target.expand_as(logits).flatten(2)
    num = 2 * (prob * target).sum(-1)
    den = prob.sum(-1) + target.sum(-1)
    return 1 - (num + 1) / (den + 1)


def _actual_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of ``logits > 0`` with the target, (B, M); no gradient."""
    with torch.no_grad():
        pred = (logits > 0).flatten(2)
        gt = (target > 0.5).expand_as(logits).flatten(2)
        inter = (pred & gt).sum(-1).float()
        union = (pred | gt).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mask_losses(multimask_logits: torch.Tensor, ious: torch.Tensor,
                object_score_logits: torch.Tensor, target: torch.Tensor,
                weights: LossWeights = LossWeights()) -> MaskLoss:
    """SAM 2 loss for one prediction step of a batch of objects.

    Args:
        multimask_logits: (B, M, H, W) mask logits (M = 1 or 3), at the target's resolution.
        ious: (B, M) predicted IoUs.
        object_score_logits: (B, 1).
        target: (B, 1, H, W) float in [0, 1] ground truth, 0/1 or soft (area coverage of a
            finer mask); an all-zero mask = object not visible.
        weights: loss weights.
    Returns:
        MaskLoss with the weighted total and the unweighted terms, each averaged over B.
    """
    if multimask_logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"logits {tuple(multimask_logits.shape)} and target "
                         f"{tuple(target.shape)} must have the same spatial size")
    target = target.float()
    present = (target.flatten(1).amax(-1) > 0).float()  # (B,)
    focal = sigmoid_focal_loss(multimask_logits, target)  # (B, M)
    dice = dice_loss(multimask_logits, target)  # (B, M)
    combined = weights.focal * focal + weights.dice * dice
    best = combined.argmin(dim=1, keepdim=True)  # lowest-loss mask is the one trained
    focal_b = focal.gather(1, best).squeeze(1)
    dice_b = dice.gather(1, best).squeeze(1)
    iou_l1 = (ious - _actual_iou(multimask_logits, target)).abs().mean(1)  # all masks
    obj = F.binary_cross_entropy_with_logits(object_score_logits.reshape(-1), present,
                                             reduction="none")
    n = max(float(target.shape[0]), 1.0)
    focal_m = (focal_b * present).sum() / n
    dice_m = (dice_b * present).sum() / n
    iou_m = (iou_l1 * present).sum() / n
    obj_m = obj.sum() / n
    total = (weights.focal * focal_m + weights.dice * dice_m + weights.iou * iou_m
             + weights.object_score * obj_m)
    return MaskLoss(total=total, focal=focal_m, dice=dice_m, iou=iou_m, object_score=obj_m)
