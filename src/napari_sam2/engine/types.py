"""Result types returned by the engine (plain numpy, so callers need no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskPrediction:
    """Masks predicted for one prompt on one image.

    Attributes:
        masks: (M, H, W) bool, at the image's own resolution.
        iou_scores: (M,) float32, the model's estimate of each mask's IoU.
        low_res_logits: (M, h4, w4) float32 logits at the decoder's resolution (256x256 for
            official models); pass one back as ``mask_input`` to refine.
        object_score_logits: the object-presence logit (> 0: an object is there).
    """

    masks: np.ndarray
    iou_scores: np.ndarray
    low_res_logits: np.ndarray
    object_score_logits: float

    @property
    def scores(self) -> np.ndarray:
        """Alias of ``iou_scores`` (the name issue 2 uses)."""
        return self.iou_scores

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.iou_scores))

    @property
    def best(self) -> np.ndarray:
        """(H, W) bool: the mask with the highest predicted IoU."""
        return self.masks[self.best_index]


@dataclass(frozen=True)
class FrameResult:
    """All tracked objects' outputs on one frame.

    Attributes:
        frame: index of the frame along the session's stack axis.
        obj_ids: the objects, in the order of the rows below.
        logits: (N, H, W) float32 mask logits at the frame's resolution.
        object_scores: (N,) float32 object-presence logits (<= 0: the object is not visible).
    """

    frame: int
    obj_ids: list[int]
    logits: np.ndarray
    object_scores: np.ndarray

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool."""
        return self.logits > 0

    def mask_of(self, obj_id: int) -> np.ndarray:
        """(H, W) bool mask of one object."""
        return self.masks[self.obj_ids.index(obj_id)]
