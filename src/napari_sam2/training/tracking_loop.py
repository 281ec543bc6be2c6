"""Differentiable training-time tracking of a batch of objects through clips (SAM 2 §4).

This is the training counterpart of the engine's TrackingSession, written for gradients and
batching rather than interaction: every object of every clip in a batch is processed at once,
frames are encoded in one call, and the whole rollout (prompted frames -> memory -> tracked
frames) stays in the autograd graph, so memory attention, the memory encoder, the object
pointers and the temporal encodings all learn.

Per clip of ``T`` frames:

1. Conditioning frames: frame 0 and, with probability ``second_prompt_prob``, one more random
   frame. Each object gets, independently, a ground-truth mask (``mask_as_output``), a positive
   click inside its mask, or a noisy box; click and box prompts are followed by ``n`` rounds of
   corrective clicks drawn from the error region (previous logits fed back as mask input).
   Conditioning frames see no memory (``no_mem_embed`` is added to their features).
2. Every other frame, in order: features conditioned on the memory bank (all conditioning frames,
   the ``num_maskmem - 1`` previous frames, and object pointers of the past frames), multimask
   decoding, and encoding of the new memory.

Memory selection and temporal encodings are the engine's own (``engine.memory.plan_from_config``
and ``engine.tracker.memory_tokens``, Meta's video-predictor rules, see
``../shared/reference/ARCHITECTURE.md`` §5), so training attends to exactly what inference
attends to for the same history. Losses are taken on every prediction (every corrective round,
every frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_sam2.engine.memory import MemoryPlan, plan_from_config
from napari_sam2.engine.tracker import memory_tokens
from napari_sam2.training.datasets import Clip
from napari_sam2.training.losses import LossWeights, mask_losses
from napari_sam2.training.prompts import (PROMPT_BOX, PROMPT_CLICK, PROMPT_MASK,
                                          boxes_from_masks, choose_prompt_types,
                                          sample_corrective_points, sample_points_inside)

__all__ = ["RolloutOptions", "RolloutResult", "rollout"]


@dataclass(frozen=True)
class RolloutOptions:
    """How prompts are simulated for one batch."""

    prompt_probs: tuple[float, float, float] = (0.5, 0.25, 0.25)  # mask, click, box
    max_corrections: int = 2  # corrective-click rounds on each prompted frame: 0..max (random)
    second_prompt_prob: float = 0.5  # chance of a second conditioning frame in a video clip
    box_noise: float = 0.1  # box corners jittered by this x the box side (0: tight boxes)
    loss_weights: LossWeights = LossWeights()


@dataclass
class RolloutResult:
    """Mean loss over all predictions and a few detached statistics."""

    loss: torch.Tensor
    terms: dict[str, float]
    first_click_iou: float  # mean IoU of the first prediction of click-prompted objects (nan if none)
    tracked_iou: float  # mean IoU on tracked (non-prompted) frames (nan if none)
    num_predictions: int
    cond_frames: tuple[int, ...] = ()  # the clip's conditioning frames
    plans: tuple[MemoryPlan, ...] = ()  # what each tracked frame attended to, in order


class _Features:
    """Backbone outputs of all frames of the batch, gathered per object."""

    def __init__(self, model, images: torch.Tensor):
        feats = model.encode_image(images)
        self.vision = feats.vision_features  # (F, C, h, w)
        self.pos = feats.vision_pos_enc  # (F, C, h, w)
        self.high_res = tuple(feats.high_res_features)  # (F, C/8, 4h, 4w), (F, C/4, 2h, 2w)

    def at(self, frame_index: torch.Tensor):
        """Features of frame ``frame_index[b]`` for each object b."""
        return (self.vision[frame_index], self.pos[frame_index],
                tuple(f[frame_index] for f in self.high_res))


def _iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) logits vs targets -> (B,) IoU of ``logits > 0`` (1 when both empty)."""
    pred, gt = logits[:, 0] > 0, target[:, 0] > 0.5
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class _Accumulator:
    def __init__(self, weights: LossWeights):
        self.weights = weights
        self.total = None
        self.terms: dict[str, float] = {}
        self.count = 0

    def add(self, out, target: torch.Tensor) -> None:
        # loss at the decoder's own 4h x 4w resolution against the target's area coverage
        # (a soft target): 16x cheaper than at S x S, same zero crossing after upsampling
        factor = target.shape[-1] // out.low_res_multimasks.shape[-1]
        soft = F.avg_pool2d(target, factor) if factor > 1 else target
        loss = mask_losses(out.low_res_multimasks, out.ious, out.object_score_logits, soft,
                           self.weights)
        self.total = loss.total if self.total is None else self.total + loss.total
        for k, v in loss.detached().items():
            self.terms[k] = self.terms.get(k, 0.0) + v
        self.count += 1


def _prompt_frame(model, feats: _Features, frame_index: torch.Tensor, target: torch.Tensor,
                  kinds: torch.Tensor, n_corrections: int, gen: torch.Generator,
                  acc: _Accumulator, stats: dict, box_noise: float):
    """Prompt every object on its conditioning frame; returns (high_res_masks (B,1,S,S),
    object_score_logits (B,1), obj_ptr (B,C))."""
    vision, _, high_res = feats.at(frame_index)
    b = vision.shape[0]
    with_mem = model.add_no_mem_embed(vision)
    gt = target[:, 0] > 0.5
    high = torch.zeros_like(target)
    score = torch.zeros(b, 1, dtype=vision.dtype, device=vision.device)
    ptr = torch.zeros(b, vision.shape[1], dtype=vision.dtype, device=vision.device)
    for kind in (PROMPT_MASK, PROMPT_CLICK, PROMPT_BOX):
        idx = torch.nonzero(kinds == kind).flatten()
        if idx.numel() == 0:
            continue
        hr = tuple(f[idx] for f in high_res)
        if kind == PROMPT_MASK:
            out = model.mask_as_output(vision[idx], hr, target[idx])
            high[idx], score[idx], ptr[idx] = (out.high_res_masks, out.object_score_logits,
                                               out.obj_ptr)
            continue
        if kind == PROMPT_CLICK:
            coords = sample_points_inside(gt[idx], gen).to(vision.device)
            labels = torch.ones(idx.numel(), 1, dtype=torch.long, device=vision.device)
        else:
            coords = boxes_from_masks(gt[idx], gen, noise=box_noise).to(vision.device)
            labels = torch.tensor([[2, 3]], device=vision.device).expand(idx.numel(), 2)
        out = model.run_sam_heads(with_mem[idx], point_coords=coords, point_labels=labels,
                                  mask_inputs=None, high_res_features=hr,
                                  multimask_output=coords.shape[1] == 1)
        acc.add(out, target[idx])
        if kind == PROMPT_CLICK:
            stats.setdefault("click_iou", []).append(_iou(out.high_res_masks, target[idx]))
        for _ in range(n_corrections):
            new_xy, new_lab = sample_corrective_points(out.high_res_masks[:, 0] > 0, gt[idx], gen)
            coords = torch.cat([coords, new_xy.to(coords)], dim=1)
            labels = torch.cat([labels, new_lab.to(labels)], dim=1)
            out = model.run_sam_heads(with_mem[idx], point_coords=coords, point_labels=labels,
                                      mask_inputs=out.low_res_masks.detach(),
                                      high_res_features=hr, multimask_output=False)
            acc.add(out, target[idx])
        high[idx], score[idx], ptr[idx] = (out.high_res_masks, out.object_score_logits,
                                           out.obj_ptr)
    return high, score, ptr


def _memory_for_frame(model, plan: MemoryPlan, cond: dict, tracked: dict, n_frames: int):
    """Assemble (memory (M,B,Cm), memory_pos (M,B,Cm), num_ptr_tokens) for one plan.

    ``cond`` / ``tracked``: frame -> (maskmem (B,Cm,h,w), maskmem_pos (B,Cm,h,w), obj_ptr (B,C)).
    """
    def bank(t):
        return cond[t] if t in cond else tracked[t]

    return memory_tokens(model, plan, n_frames, lambda t: bank(t)[:2], lambda t: bank(t)[2])


def rollout(model, clips: list[Clip], gen: torch.Generator,
            options: RolloutOptions = RolloutOptions()) -> RolloutResult:
    """Run the training procedure on a batch of clips of equal length; returns the loss.

    Args:
        model: a ``Sam2Model`` (in train mode for training).
        clips: clips with the same number of frames T (T = 1: image training).
        gen: random generator for prompts (CPU).
        options: prompt simulation settings.
    """
    if not clips:
        raise ValueError("rollout needs at least one clip")
    n_frames = clips[0].num_frames
    if any(c.num_frames != n_frames for c in clips):
        raise ValueError("all clips of a batch must have the same number of frames")
    device = next(model.parameters()).device
    images = torch.cat([c.images for c in clips]).to(device)  # (F, 3, S, S)
    feats = _Features(model, images)
    obj_clip = torch.cat([torch.full((c.num_objects,), i) for i, c in enumerate(clips)])
    offsets = torch.tensor([0] + [c.num_frames for c in clips]).cumsum(0)[:-1]
    first = offsets[obj_clip].to(device)  # (B,) index of each object's frame 0
    masks = torch.cat([c.masks.transpose(0, 1) for c in clips]).to(device)  # (B, T, S, S)
    b = masks.shape[0]
    acc = _Accumulator(options.loss_weights)
    stats: dict = {}

    kinds = choose_prompt_types(b, options.prompt_probs, gen).to(device)
    cond_frames = [0]
    if n_frames > 1 and float(torch.rand(1, generator=gen)) < options.second_prompt_prob:
        cond_frames.append(int(torch.randint(1, n_frames, (1,), generator=gen)))
    n_corr = int(torch.randint(0, options.max_corrections + 1, (1,), generator=gen))
    cond, tracked = {}, {}
    for k, t in enumerate(cond_frames):
        target = masks[:, t:t + 1]
        kinds_t = kinds if k == 0 else choose_prompt_types(b, options.prompt_probs, gen).to(device)
        # an object absent from the frame cannot be clicked or boxed: give it its (empty) mask
        absent = target.flatten(1).sum(1) == 0
        kinds_t = torch.where(absent, torch.full_like(kinds_t, PROMPT_MASK), kinds_t)
        high, score, ptr = _prompt_frame(model, feats, first + t, target, kinds_t,
                                         n_corr, gen, acc, stats, options.box_noise)
        if n_frames > 1:
            vision = feats.vision[first + t]
            # as the video predictor does for every interacted frame: binarised mask
            mem, mem_pos = model.encode_memory(vision, high, score, is_mask_from_pts=True)
            cond[t] = (mem, mem_pos, ptr)
    tracked_iou, plans = [], []
    for t in range(1, n_frames):
        if t in cond:
            continue
        vision, pos, high_res = feats.at(first + t)
        plan = plan_from_config(model.config, t, cond.keys(), tracked.keys(),
                                num_frames=n_frames)
        plans.append(plan)
        memory, memory_pos, n_ptr = _memory_for_frame(model, plan, cond, tracked, n_frames)
        conditioned = model.condition_on_memory(vision, pos, memory, memory_pos, n_ptr)
        out = model.run_sam_heads(conditioned, point_coords=None, point_labels=None,
                                  mask_inputs=None, high_res_features=high_res,
                                  multimask_output=True)
        acc.add(out, masks[:, t:t + 1])
        tracked_iou.append(_iou(out.high_res_masks, masks[:, t:t + 1]))
        mem, mem_pos = model.encode_memory(vision, out.high_res_masks, out.object_score_logits,
                                           is_mask_from_pts=False)
        tracked[t] = (mem, mem_pos, out.obj_ptr)
    if acc.total is None:  # only mask prompts on a single frame: nothing to learn from
        loss = sum(p.sum() * 0.0 for p in model.parameters())
        return RolloutResult(loss, {}, float("nan"), float("nan"), 0, tuple(cond_frames))
    click = torch.cat(stats["click_iou"]).mean().item() if "click_iou" in stats else float("nan")
    trk = torch.cat(tracked_iou).mean().item() if tracked_iou else float("nan")
    terms = {k: v / acc.count for k, v in acc.terms.items()}
    return RolloutResult(acc.total / acc.count, terms, click, trk, acc.count,
                         tuple(cond_frames), tuple(plans))

