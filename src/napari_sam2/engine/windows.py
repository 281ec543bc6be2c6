"""Windows: segment a small object in a crop around it instead of in the whole frame.

SAM 2 resizes what it is given to its S x S input (1024 px for the official models, 256 for
``sam2_demo``). A 20 px cell in a 4096 px frame becomes 1-5 px there and is lost; in a window
of a few times its size it is as large as the objects the model learnt from. A window is a
rectangle of the frame in the frame's own (level 0) pixels; it is read (only it, from any
array-like: numpy, dask, zarr, or a list of levels of a multiscale image), resized to S x S
and encoded like a whole frame. Prompts are moved into it and masks come back with the window
that places them in the frame, so every public API stays in frame coordinates.

* ``Window(top, left, height, width)``: the rectangle; ``to_local`` moves (row, col) points
  into it, ``crop`` and ``paste`` move masks out of and into frames.
* ``check_window(value)``: the user's setting: None (whole frame), ``"auto"`` (from the
  object) or a side in pixels.
* ``window_around(centre, side, frame_hw, step)``: a square window centred on a point, kept
  inside the frame, its corner on a grid of ``step`` px.
* ``side_for_extent(extent)``: the window side for an object of that size (``CONTEXT`` times
  its longest side, at least ``MIN_SIDE``).
* ``PlaneLevels``: one 2-D plane at one or more resolutions (napari's multiscale order, level 0
  the finest); ``read(window, image_size)`` reads the window from the coarsest level that
  still gives the model at least its input size, so a window over a whole slide reads a few
  megabytes, not the slide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Window side = CONTEXT x the object's longest side: the object then spans a sixth of the
#: model's input, as the cells of the demo model's training images (45 px in 256) do; 2.5, 4
#: and 6 gave click IoU 0.80, 0.92 and 0.96 on 16 cells of a 2048 px field
#: (docs/image_predictor.md, *Windows*).
CONTEXT = 6.0
#: Smallest window side (frame px): tiny objects keep some surroundings to be told from.
MIN_SIDE = 64
#: Side of the first window of an "auto" click, as a multiple of the model's input size S
#: (1.0: the window is read at native pixel size).
FIRST_SIDE = 1.0
WHOLE_FRAME_WORDS = ("whole", "whole frame", "none", "off")


@dataclass(frozen=True)
class Window:
    """A rectangle of a frame: rows ``top .. top + height - 1``, columns ``left .. left +
    width - 1``, in the frame's (level 0) pixels."""

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 1 or min(self.top, self.left) < 0:
            raise ValueError(f"a window needs top, left >= 0 and a positive size, got {self}")

    @classmethod
    def whole(cls, frame_hw: Sequence[int]) -> Window:
        return cls(0, 0, int(frame_hw[0]), int(frame_hw[1]))

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), end exclusive."""
        return self.top, self.left, self.top + self.height, self.left + self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def covers(self, frame_hw: Sequence[int]) -> bool:
        """Whether this is the whole frame."""
        return self == Window.whole(frame_hw)

    def to_local(self, points) -> np.ndarray:
        """(N, 2) (row, col) frame pixels -> the same points in the window's pixels."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts - np.array([self.top, self.left], np.float64)

    def box_to_local(self, box) -> tuple[float, float, float, float]:
        r0, c0, r1, c1 = (float(v) for v in box)
        return r0 - self.top, c0 - self.left, r1 - self.top, c1 - self.left

    def crop(self, frame_array: np.ndarray) -> np.ndarray:
        """The window's part of a (H, W, ...) array (a view for numpy)."""
        return frame_array[self.slices]

    def paste(self, crop: np.ndarray, frame_hw: Sequence[int], fill=0) -> np.ndarray:
        """A (H, W) array of ``crop``'s dtype: ``crop`` at the window, ``fill`` elsewhere."""
        crop = np.asarray(crop)
        if crop.shape[-2:] != self.shape:
            raise ValueError(f"crop of shape {crop.shape} does not fit the window {self}")
        out = np.full(crop.shape[:-2] + tuple(int(v) for v in frame_hw), fill, crop.dtype)
        out[(...,) + self.slices] = crop
        return out


def check_window(value):
    """The window setting: None (whole frame), ``"auto"`` or a side in pixels (int >= 16).

    Raises:
        ValueError: anything else, naming the accepted values.
    """
    if value is None:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in WHOLE_FRAME_WORDS:
            return None
        if word == "auto":
            return "auto"
        try:
            value = int(word)
        except ValueError:
            value = word
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 16:
        raise ValueError(f"window must be None (the whole frame), 'auto' (from the object) or a "
                         f"side in pixels >= 16, got {value!r}")
    return int(value)


def side_for_extent(extent: Sequence[float], *, context: float | None = None,
                    minimum: int | None = None) -> int:
    """Window side for an object whose bounding box is ``extent`` = (height, width) px
    (defaults: ``CONTEXT`` and ``MIN_SIDE``)."""
    context = CONTEXT if context is None else float(context)
    minimum = MIN_SIDE if minimum is None else int(minimum)
    return max(minimum, int(math.ceil(context * max(float(v) for v in extent))))


def window_around(centre: Sequence[float], side: int | Sequence[int],
                  frame_hw: Sequence[int], *, step: int = 1) -> Window:
    """A window of ``side`` (one int, or (height, width)) centred on ``centre`` (row, col).

    The window is moved (not shrunk) to stay inside the frame, and shrunk only where the frame
    is smaller than it; its corner lies on a grid of ``step`` px (re-centring then moves it by
    whole steps).
    """
    H, W = (int(v) for v in frame_hw)
    sides = (side, side) if np.isscalar(side) else tuple(side)
    out = []
    for c, s, n in zip(centre, sides, (H, W)):
        s = int(min(max(1, int(s)), n))
        start = float(c) + 0.5 - s / 2
        if step > 1:
            start = round(start / step) * step
        out.append((int(min(max(0, round(start)), n - s)), s))
    (top, h), (left, w) = out
    return Window(top, left, h, w)


def window_covering(box, side: int, frame_hw: Sequence[int], *, step: int = 1) -> Window:
    """A window of at least ``side`` centred on ``box`` (r0, c0, r1, c1) that contains it
    with a little room (10 % of its size on each side)."""
    r0, c0, r1, c1 = (float(v) for v in box)
    need = int(math.ceil(1.2 * max(r1 - r0, c1 - c0))) + 2
    return window_around(((r0 + r1) / 2, (c0 + c1) / 2), max(int(side), need), frame_hw,
                         step=step)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, c0, r1, c1) end-exclusive bounding box of a (h, w) bool mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def touches_border(box_local: Sequence[int], shape: Sequence[int], margin: int = 1) -> bool:
    """Whether an end-exclusive box in a (h, w) grid comes within ``margin`` cells of its
    edge."""
    r0, c0, r1, c1 = box_local
    h, w = shape
    return r0 < margin or c0 < margin or r1 > h - margin or c1 > w - margin


class _Plane:
    """A lazy 2-D view of one frame of an array: ``view[rows, cols]`` indexes the array with
    the frame index put in at the stack axis (no frame is read to make it)."""

    def __init__(self, array, index: int | None, axis: int) -> None:
        self.array, self.index, self.axis = array, index, axis
        shape = tuple(int(s) for s in array.shape)
        self.shape = shape if index is None else shape[:axis] + shape[axis + 1:]

    def __getitem__(self, key: tuple[slice, slice]):
        if self.index is None:
            return self.array[key]
        full = list(key)
        full.insert(self.axis, self.index)
        return self.array[tuple(full)]


class PlaneLevels:
    """One (H, W) or (H, W, 3) plane at one or more resolutions, read window by window.

    Args:
        levels: array-likes, level 0 (full resolution) first then coarser ones, as napari's
            multiscale layers; each is the plane itself, or a stack of planes when ``index``
            is given.
        index: the frame to read along ``axis`` of every level (None: the levels are planes).
        axis: the stack axis of the levels.
    """

    def __init__(self, levels, index: int | None = None, axis: int = 0) -> None:
        levels = list(levels) if isinstance(levels, (list, tuple)) else [levels]
        if not levels:
            raise ValueError("levels is empty: pass at least the full-resolution image")
        self.planes = [_Plane(a, index, axis) for a in levels]
        self.frame_shape = tuple(int(s) for s in self.planes[0].shape[:2])
        for i, p in enumerate(self.planes[1:], 1):
            if p.shape[0] > self.frame_shape[0] or p.shape[1] > self.frame_shape[1]:
                raise ValueError(f"level {i} of shape {p.shape} is larger than level 0 "
                                 f"{self.frame_shape}: pass the finest level first")

    def factors(self, level: int) -> tuple[float, float]:
        """(rows, cols) of level 0 per pixel of ``level``."""
        h, w = self.planes[level].shape[:2]
        return self.frame_shape[0] / h, self.frame_shape[1] / w

    def level_for(self, window: Window, image_size: int) -> int:
        """The coarsest level at which the window is still at least ``image_size`` px (level
        0 when even that is smaller): the model never sees fewer pixels than its input."""
        best = 0
        for i in range(1, len(self.planes)):
            fr, fc = self.factors(i)
            if min(window.height / fr, window.width / fc) >= image_size:
                best = i
        return best

    def read(self, window: Window, image_size: int) -> tuple[np.ndarray, int]:
        """The window's pixels as a numpy array (only they are read) and the level read.

        At a coarser level the window's edges are rounded to that level's pixels (at most half
        of one of them, in frame pixels, off).
        """
        level = self.level_for(window, image_size)
        fr, fc = self.factors(level)
        plane = self.planes[level]
        h, w = plane.shape[:2]
        r0 = min(h - 1, int(round(window.top / fr)))
        c0 = min(w - 1, int(round(window.left / fc)))
        r1 = min(h, max(r0 + 1, int(round((window.top + window.height) / fr))))
        c1 = min(w, max(c0 + 1, int(round((window.left + window.width) / fc))))
        return np.asarray(plane[slice(r0, r1), slice(c0, c1)]), level
