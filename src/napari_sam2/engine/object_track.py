"""Per-object bookkeeping of the tracking session: prompts, outputs, the memory bank.

One ``ObjectTrack`` per object replaces the string-keyed dicts of Meta's ``inference_state``
with typed fields that keep the same meaning:

* ``cond`` / ``non_cond``: the consolidated outputs (Meta's ``output_dict_per_obj``), the
  memory bank the object attends to; in a session ``non_cond`` is a ``SpilledOutputs``
  mapping that keeps it under a RAM bound (``spilled_outputs.py``);
* ``temp_cond`` / ``temp_non_cond``: outputs of prompts given since the last propagation (Meta's
  ``temp_output_dict_per_obj``); they join the bank when the next propagation starts;
* ``tracked``: frames visited by a propagation, with its direction (``frames_tracked_per_obj``);
* ``prompt_frames``: frames that hold points, a box or a mask for this object.

A ``FrameOutput`` keeps the low-res logits of every frame, so that its memory features (which
are 4x larger) can be dropped and recomputed exactly from them and the frame's image features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class FrameOutput:
    """One object's output on one frame.

    Attributes:
        low_res: (1, 1, 4h, 4w) mask logits; float32 for prompted frames, float16 for tracked
            ones (the memory is always encoded from exactly this tensor, so dropping and
            recomputing it gives the same bits).
        obj_ptr: (1, C) float32 object pointer.
        score: (1, 1) float32 object-score logit (<= 0: not visible).
        from_prompt: the mask came from user input (its memory binarises the mask, as Meta's
            ``is_mask_from_pts``); False for tracked frames (sigmoid).
        memory: (1, Cm, h, w) bfloat16 memory features, or None while not computed / evicted.
        window: the ``windows.Window`` of the frame that ``low_res`` and ``memory`` cover;
            None: the whole frame.
    """

    low_res: torch.Tensor
    obj_ptr: torch.Tensor
    score: torch.Tensor
    from_prompt: bool
    memory: torch.Tensor | None = None
    window: object = None

    @property
    def present(self) -> bool:
        return bool(self.score.reshape(-1)[0] > 0)

    @property
    def nbytes(self) -> int:
        ts = [self.low_res, self.obj_ptr, self.score]
        if self.memory is not None:
            ts.append(self.memory)
        return int(sum(t.numel() * t.element_size() for t in ts))


@dataclass
class PointPrompt:
    """Points of one frame in model-input pixels: coords (N, 2) float32 (x, y), labels (N,)."""

    coords: np.ndarray
    labels: np.ndarray

    def extended(self, coords: np.ndarray, labels: np.ndarray) -> PointPrompt:
        return PointPrompt(np.concatenate([self.coords, coords]),
                           np.concatenate([self.labels, labels]))


@dataclass
class ObjectTrack:
    """Everything the session knows about one object."""

    obj_id: int
    points: dict[int, PointPrompt] = field(default_factory=dict)
    mask_frames: set[int] = field(default_factory=set)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    side: int | None = None  # window side (frame px) in a session with windows

    # ------------------------------------------------------------------ queries
    def output(self, frame: int) -> FrameOutput | None:
        """The most recent output on ``frame`` (pending prompts first), or None."""
        for d in (self.temp_cond, self.temp_non_cond, self.cond, self.non_cond):
            out = d.get(frame)
            if out is not None:
                return out
        return None

    def frames_with_output(self) -> list[int]:
        return sorted(set(self.temp_cond) | set(self.temp_non_cond) | set(self.cond)
                      | set(self.non_cond))

    def conditioning_frames(self) -> list[int]:
        """Frames that are (or will be, at the next propagation) conditioning frames."""
        return sorted(set(self.cond) | set(self.temp_cond))

    def prompt_frames(self) -> list[int]:
        return sorted(set(self.points) | self.mask_frames)

    def bank_output(self, frame: int) -> FrameOutput | None:
        """Output of ``frame`` in the consolidated bank (what memory attention may read)."""
        out = self.cond.get(frame)
        return out if out is not None else self.non_cond.get(frame)

    # ------------------------------------------------------------------ updates
    def store_prompt_output(self, frame: int, out: FrameOutput, as_cond: bool) -> None:
        (self.temp_cond if as_cond else self.temp_non_cond)[frame] = out

    def consolidate(self) -> None:
        """Move pending prompt outputs into the bank (Meta's propagation preflight).

        Non-conditioning ones first, then conditioning ones; a frame that is a conditioning
        frame loses any non-conditioning output it had.
        """
        self.non_cond.update(self.temp_non_cond)
        self.temp_non_cond.clear()
        self.cond.update(self.temp_cond)
        self.temp_cond.clear()
        for f in self.cond:
            self.non_cond.pop(f, None)

    def clear_frame(self, frame: int) -> None:
        """Remove this object's prompts on ``frame`` (Meta's ``clear_all_prompts_in_frame``).

        Pending outputs of the frame go; a consolidated conditioning output is downgraded to a
        plain tracked output and the frame counts as untracked again.
        """
        self.points.pop(frame, None)
        self.mask_frames.discard(frame)
        self.temp_cond.pop(frame, None)
        self.temp_non_cond.pop(frame, None)
        out = self.cond.pop(frame, None)
        if out is not None:
            self.non_cond[frame] = out
            self.tracked.pop(frame, None)

    def evict_memories(self, keep) -> int:
        """Drop memory features of non-conditioning frames for which ``keep(frame)`` is False.

        Returns the number of memories dropped (their logits stay, so they can be recomputed).
        """
        n = 0
        items = getattr(self.non_cond, "resident_items", self.non_cond.items)  # spilled: none
        for f, out in items():
            if out.memory is not None and not keep(f):
                out.memory = None
                n += 1
        return n
