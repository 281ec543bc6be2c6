"""Which memories a frame attends to: pure index arithmetic, no tensors.

The one implementation of memory selection: the engine's ``Tracker`` (inference) and the
training rollout (``training/tracking_loop.py``) both call ``plan_from_config``, so training
attends to exactly the frames, temporal positions and pointer distances that inference does.

Semantics of Meta's Dec-2024 video predictor (``SAM2Base._prepare_memory_conditioned_features``
and ``select_closest_cond_frames``), pulled out of the tensor code so that it can be tested on
its own. ``d`` is the direction of travel: +1 forward, -1 in reverse.

* Spatial memories of frame ``f``: the selected conditioning frames (all of them by default,
  also those in the future) at temporal position 0, then for t_pos = 1 .. num_maskmem - 1 the
  frame ``t_rel = num_maskmem - t_pos`` steps back (f - d, f - 2d, ... with stride 1), if that
  frame has an output (a non-conditioning one, or an unselected conditioning one).
* Object pointers of frame ``f``: the selected conditioning frames that are not in the future
  (when ``only_past``), then frames f - d .. f - d*(max_ptrs - 1) that have an output; the walk
  stops at the ends of the stack.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


def split_conditioning(
    frame: int, cond_frames: Iterable[int], max_cond_frames: int = -1
) -> tuple[list[int], list[int]]:
    """Split conditioning frames into those used in attention and the rest.

    With ``max_cond_frames == -1`` (every official config) or enough room, all are selected.
    Otherwise the closest one before ``frame`` and the closest one at or after it are taken,
    then the others by distance to ``frame`` (ties: the earlier frame first).

    Returns:
        (selected, unselected), each sorted.
    """
    cond = sorted(set(int(t) for t in cond_frames))
    if max_cond_frames == -1 or len(cond) <= max_cond_frames:
        return cond, []
    if max_cond_frames < 2:
        raise ValueError(f"max_cond_frames must be -1 or >= 2, got {max_cond_frames}")
    selected: list[int] = []
    before = [t for t in cond if t < frame]
    after = [t for t in cond if t >= frame]
    if before:
        selected.append(before[-1])
    if after:
        selected.append(after[0])
    rest = sorted((t for t in cond if t not in selected), key=lambda t: (abs(t - frame), t))
    selected += rest[: max_cond_frames - len(selected)]
    return sorted(selected), sorted(t for t in cond if t not in selected)


def previous_frame(frame: int, t_rel: int, stride: int, reverse: bool) -> int:
    """The frame ``t_rel`` memory steps back from ``frame`` (may lie outside the stack).

    The nearest step is always the adjacent frame; farther ones sit on a grid of ``stride``.
    """
    if t_rel == 1:
        return frame + 1 if reverse else frame - 1
    if not reverse:
        return ((frame - 2) // stride) * stride - (t_rel - 2) * stride
    return -(-(frame + 2) // stride) * stride + (t_rel - 2) * stride


def memory_frames(
    frame: int,
    selected_cond: Iterable[int],
    available: Collection[int],
    *,
    num_maskmem: int,
    stride: int = 1,
    reverse: bool = False,
) -> list[tuple[int, int]]:
    """Spatial memories of ``frame`` as (t_pos, memory frame) pairs.

    Args:
        frame: the frame being segmented.
        selected_cond: conditioning frames used in attention (t_pos 0).
        available: frames whose output may serve as a recent memory (the object's
            non-conditioning outputs plus unselected conditioning ones).
        num_maskmem: memories per frame (7 official: 1 slot for conditioning + 6 recent).
        stride: ``memory_temporal_stride_for_eval`` (1 official).
        reverse: tracking direction.

    Returns:
        conditioning frames first (t_pos 0, sorted), then recent frames farthest first
        (t_pos 1 is the oldest); missing frames are skipped. The temporal encoding index of a
        pair is ``num_maskmem - t_pos - 1``.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    out = [(0, int(t)) for t in sorted(selected_cond)]
    for t_pos in range(1, num_maskmem):
        prev = previous_frame(frame, num_maskmem - t_pos, stride, reverse)
        if prev in available:
            out.append((t_pos, prev))
    return out


def pointer_frames(
    frame: int,
    selected_cond: Iterable[int],
    available: Collection[int],
    *,
    num_frames: int,
    max_obj_ptrs: int = 16,
    reverse: bool = False,
    signed: bool = True,
    only_past: bool = True,
) -> list[tuple[int, int]]:
    """Object pointers of ``frame`` as (temporal distance, source frame) pairs.

    Args:
        frame: the frame being segmented.
        selected_cond: conditioning frames used in attention.
        available: frames with a non-conditioning (or unselected conditioning) output.
        num_frames: length of the stack; pointers come from at most
            ``min(num_frames, max_obj_ptrs) - 1`` recent frames.
        max_obj_ptrs: ``max_obj_ptrs_in_encoder`` (16 official).
        reverse: tracking direction.
        signed: SAM 2.1 (``use_signed_tpos_enc_to_obj_ptrs``): conditioning distances are
            (frame - t) * d; SAM 2.0: |frame - t|.
        only_past: ``only_obj_ptrs_in_the_past_for_eval``: skip conditioning frames ahead.

    Returns:
        conditioning pointers first (sorted by frame), then recent ones nearest first.
    """
    d = -1 if reverse else 1
    out = []
    for t in sorted(selected_cond):
        if only_past and (t < frame if reverse else t > frame):
            continue
        out.append(((frame - t) * d if signed else abs(frame - t), int(t)))
    limit = min(num_frames, max_obj_ptrs)
    for t_diff in range(1, limit):
        t = frame + t_diff if reverse else frame - t_diff
        if t < 0 or t >= num_frames:
            break
        if t in available:
            out.append((t_diff, t))
    return out


def pointer_max_distance(num_frames: int, max_obj_ptrs: int = 16) -> int:
    """The distance that the pointer temporal encoding normalises by (at least 1)."""
    return max(min(num_frames, max_obj_ptrs) - 1, 1)


@dataclass(frozen=True)
class MemoryPlan:
    """Everything frame ``frame`` of one object attends to.

    Attributes:
        spatial: (t_pos, frame) pairs, see ``memory_frames``.
        pointers: (distance, frame) pairs, see ``pointer_frames``.
    """

    frame: int
    spatial: tuple[tuple[int, int], ...]
    pointers: tuple[tuple[int, int], ...]

    @property
    def frames_needed(self) -> set[int]:
        """Frames whose stored memory features this plan reads."""
        return {t for _, t in self.spatial}

    @property
    def shape_key(self) -> tuple[int, int]:
        """(spatial memories, pointers): plans with equal keys can be batched."""
        return len(self.spatial), len(self.pointers)


def plan_memory(
    frame: int,
    cond_frames: Iterable[int],
    other_frames: Iterable[int],
    *,
    num_frames: int,
    num_maskmem: int = 7,
    stride: int = 1,
    max_cond_frames: int = -1,
    max_obj_ptrs: int = 16,
    reverse: bool = False,
    signed: bool = True,
    only_past: bool = True,
) -> MemoryPlan:
    """Combine the rules above for one object.

    Args:
        cond_frames: the object's conditioning frames (with outputs in its bank).
        other_frames: the object's non-conditioning frames with outputs.
    """
    selected, unselected = split_conditioning(frame, cond_frames, max_cond_frames)
    available = set(int(t) for t in other_frames) | set(unselected)
    spatial = memory_frames(frame, selected, available, num_maskmem=num_maskmem,
                            stride=stride, reverse=reverse)
    pointers = pointer_frames(frame, selected, available, num_frames=num_frames,
                              max_obj_ptrs=max_obj_ptrs, reverse=reverse, signed=signed,
                              only_past=only_past)
    return MemoryPlan(int(frame), tuple(spatial), tuple(pointers))


def plan_from_config(
    config,
    frame: int,
    cond_frames: Iterable[int],
    other_frames: Iterable[int],
    *,
    num_frames: int,
    reverse: bool = False,
) -> MemoryPlan:
    """``plan_memory`` with every rule taken from a model config (inference and training).

    Args:
        config: a ``Sam2Config`` (``num_maskmem``, ``memory_temporal_stride_for_eval``,
            ``max_cond_frames_in_attn``, ``max_obj_ptrs_in_encoder``,
            ``use_signed_tpos_enc_to_obj_ptrs``, ``only_obj_ptrs_in_the_past_for_eval``).
        frame: the frame being segmented.
        cond_frames: the object's conditioning frames (with outputs in its bank).
        other_frames: the object's non-conditioning frames with outputs.
        num_frames: length of the stack (or training clip).
        reverse: tracking direction.
    """
    return plan_memory(
        frame, cond_frames, other_frames, num_frames=num_frames,
        num_maskmem=config.num_maskmem, stride=config.memory_temporal_stride_for_eval,
        max_cond_frames=config.max_cond_frames_in_attn,
        max_obj_ptrs=config.max_obj_ptrs_in_encoder, reverse=reverse,
        signed=config.use_signed_tpos_enc_to_obj_ptrs,
        only_past=config.only_obj_ptrs_in_the_past_for_eval)
