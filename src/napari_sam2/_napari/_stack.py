"""Stack geometry (numpy only): which 2-D plane of an n-D image SAM sees, and how to get it.

An image layer's non-channel dims are ``(..., H, W)``: the last two are the plane SAM segments,
one of the others is the *stack axis* (t or z) along which frames are tracked, and the remaining
ones are held at the viewer's current position. A 2-D image is a stack of one frame
(``stack_axis=None``), so clicks and propagation share one code path.

A :class:`StackRef` names one such stack; a :class:`FrameStack` reads its frames lazily from
numpy, dask or zarr data and is what a ``TrackingSession`` receives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_NDIM = 4  # non-channel dims we support: (H, W), (N, H, W), (N, M, H, W)


@dataclass(frozen=True)
class StackRef:
    """One stack of planes of an image: the stack axis and where the other axes are held.

    Attributes:
        ndim: number of non-channel dims of the image (2..4).
        stack_axis: the axis frames run along, or None for a 2-D image.
        fixed: ((axis, index), ...) for the non-spatial axes other than the stack axis.
    """

    ndim: int
    stack_axis: int | None
    fixed: tuple[tuple[int, int], ...] = ()

    def plane_key(self, frame: int) -> tuple:
        """Index into the (non-channel) array selecting the (H, W) plane of ``frame``."""
        key: list = [slice(None)] * self.ndim
        for axis, index in self.fixed:
            key[axis] = int(index)
        if self.stack_axis is not None:
            key[self.stack_axis] = int(frame)
        elif frame != 0:
            raise IndexError(f"a 2-D image has only frame 0, got frame {frame}")
        return tuple(key)

    def frame_of(self, coords) -> int:
        """Frame index of a data-coordinate point (rounded to the nearest pixel)."""
        if self.stack_axis is None:
            return 0
        return int(np.round(coords[self.stack_axis]))

    def contains(self, coords) -> bool:
        """True when the data-coordinate point lies on one of this stack's planes."""
        return all(int(np.round(coords[a])) == i for a, i in self.fixed)


def non_spatial_axes(ndim: int) -> list[int]:
    return list(range(ndim - 2))


def check_ndim(shape) -> int:
    """Validate the non-channel shape of an image; return its ndim."""
    ndim = len(shape)
    if ndim < 2 or ndim > MAX_NDIM:
        raise ValueError(
            f"the image has {ndim} non-channel dimensions {tuple(shape)}; SAM 2 works on 2-D, "
            "2-D+t, 3-D and 3-D+t images (2 to 4 dimensions). Split other axes into separate "
            "layers (e.g. open channels with channel_axis) or slice the data first."
        )
    if min(shape[-2:]) < 2:
        raise ValueError(f"the image plane {tuple(shape[-2:])} is too small to segment")
    return ndim


def stack_ref(shape, stack_axis: int | None, position) -> StackRef:
    """The stack through ``position`` (data coords, one per dim) along ``stack_axis``.

    ``stack_axis`` None picks axis 0 for a stack and means a single frame for a 2-D image.
    """
    ndim = check_ndim(shape)
    if ndim == 2:
        return StackRef(2, None, ())
    if stack_axis is None:
        stack_axis = 0
    if stack_axis not in non_spatial_axes(ndim):
        raise ValueError(
            f"stack axis {stack_axis} is not one of the non-spatial axes "
            f"{non_spatial_axes(ndim)} of an image with shape {tuple(shape)}"
        )
    fixed = []
    for axis in non_spatial_axes(ndim):
        if axis != stack_axis:
            index = int(np.clip(np.round(position[axis]), 0, shape[axis] - 1))
            fixed.append((axis, index))
    return StackRef(ndim, stack_axis, tuple(fixed))


class FrameStack:
    """Lazy frames of one stack: ``len(stack)`` frames of (H, W) or (H, W, 3).

    Args:
        data: the image array (numpy, dask, zarr), non-channel dims first, plus a trailing
            RGB(A) axis when ``rgb``.
        ref: which stack of planes.
        rgb: whether ``data`` has a trailing colour axis (RGBA is cut to RGB).
    """

    def __init__(self, data, ref: StackRef, *, rgb: bool = False):
        self.data = data
        self.ref = ref
        self.rgb = bool(rgb)
        shape = tuple(data.shape[:-1] if rgb else data.shape)
        if len(shape) != ref.ndim:
            raise ValueError(f"data shape {data.shape} does not match a {ref.ndim}-D stack")
        self.frame_shape = shape[-2:]
        self._n = 1 if ref.stack_axis is None else shape[ref.stack_axis]
        tail = (3,) if rgb else ()
        self.shape = (self._n, *self.frame_shape, *tail)
        self.ndim = len(self.shape)
        self.dtype = data.dtype

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, frame) -> np.ndarray:
        if isinstance(frame, tuple):  # (frame,) or (frame, rows, cols): only that part is read
            frame, rest = frame[0], frame[1:]
            if not rest:
                return self[frame]
            key = list(self._plane(frame))
            key[self.ref.ndim - 2:self.ref.ndim] = (list(rest[:2]) + [slice(None)])[:2]
            if self.rgb:
                key[-1] = rest[2] if len(rest) > 2 else slice(0, 3)
            return np.asarray(self.data[tuple(key)])
        return np.asarray(self.data[self._plane(frame)])

    def _plane(self, frame) -> tuple:
        """The data index of frame ``frame``'s (H, W[, 3]) plane."""
        frame = int(frame)
        if frame < 0:
            frame += self._n
        if not 0 <= frame < self._n:
            raise IndexError(f"frame {frame} out of range for a stack of {self._n} frames")
        key = self.ref.plane_key(frame)
        return key + (slice(0, 3),) if self.rgb else key


def frame_ranges(frames) -> str:
    """Compact text of frame indices: [0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    frames = sorted(set(int(f) for f in frames))
    if not frames:
        return "-"
    parts, start, prev = [], frames[0], frames[0]
    for f in frames[1:] + [None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    return ", ".join(parts)
