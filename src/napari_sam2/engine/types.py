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
        window: None: ``masks`` cover the whole image; a ``windows.Window``: they cover that
            rectangle of it (rows ``window.top ..``, columns ``window.left ..``), and
            ``low_res_logits`` are the window's (pass them back with the same window).
    """

    masks: np.ndarray
    iou_scores: np.ndarray
    low_res_logits: np.ndarray
    object_score_logits: float
    window: object = None

    @property
    def scores(self) -> np.ndarray:
        """Alias of ``iou_scores`` (the name issue 2 uses)."""
        return self.iou_scores

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.iou_scores))

    @property
    def best(self) -> np.ndarray:
        """(H, W) bool: the mask with the highest predicted IoU (the window's, if any)."""
        return self.masks[self.best_index]

    def best_in_frame(self, frame_hw) -> np.ndarray:
        """(H, W) bool of the best mask at its place in a frame of shape ``frame_hw``."""
        if self.window is None:
            return self.best
        return self.window.paste(self.best, frame_hw, False)


@dataclass(frozen=True)
class FrameResult:
    """All tracked objects' outputs on one frame.

    Attributes:
        frame: index of the frame along the session's stack axis.
        obj_ids: the objects, in the order of the rows below.
        logits: (N, H, W) float32 mask logits at the frame's resolution; in a session with
            windows, a list of N (h_i, w_i) float32 arrays, object i's logits over
            ``windows[i]`` (nothing at frame size is made).
        object_scores: (N,) float32 object-presence logits (<= 0: the object is not visible).
        windows: None (whole frames), or per object the ``windows.Window`` (frame pixels) its
            logits cover.
        frame_shape: (H, W) of the frame (needed to place windows; None: ``logits``' own).
    """

    frame: int
    obj_ids: list[int]
    logits: np.ndarray
    object_scores: np.ndarray
    windows: list | None = None
    frame_shape: tuple[int, int] | None = None

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool (with windows: pasted into frame-sized arrays)."""
        if self.windows is None:
            return self.logits > 0
        h, w = self.frame_shape
        out = np.zeros((len(self.obj_ids), h, w), bool)
        for i, win in enumerate(self.windows):
            out[(i,) + win.slices] = self.logits[i] > 0
        return out

    def mask_of(self, obj_id: int) -> np.ndarray:
        """(H, W) bool mask of one object."""
        if self.windows is None:
            return self.masks[self.obj_ids.index(obj_id)]
        window, crop = self.crop_of(obj_id)
        return window.paste(crop, self.frame_shape, False)

    def crop_of(self, obj_id: int):
        """(window, (h, w) bool mask over it) of one object: all that a big frame needs. The
        window is None in a session without windows (the mask is then the frame's)."""
        i = self.obj_ids.index(obj_id)
        return (None if self.windows is None else self.windows[i]), self.logits[i] > 0
