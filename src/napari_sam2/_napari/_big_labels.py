"""Labels of huge images (issue 19): chunked, allocated only where written, read by region.

A Labels layer for a 50000 x 50000 image would be a 10 GB int32 array per frame. When the
labels of an image would take more than ``LABELS_IN_MEMORY_BYTES`` the widget makes them a
zarr array in memory (``chunked_labels``): chunks of ``CHUNK`` x ``CHUNK`` pixels of one plane,
zstd-compressed, created only where a pixel is set (an all-zero chunk is not stored: zarr's
``write_empty_chunks=False``). Nothing else reads such labels whole: the helpers below visit
only the stored chunks (``stored_regions``): where a label is (``label_box``, ``label_planes``),
the largest label (``max_label``), the centroids of a plane (``plane_centroids``).

For a multiscale image the labels are multiscale too (``labels_levels``): level 0 is the zarr
array, the coarser levels are ``CoarseLevel`` views of it, sampled on read from the stored
chunks only, so napari shows the visible part of the labels at the image's level and never
reads a whole plane (napari does not paint on multiscale labels: such a layer shows SAM's
masks; edit them on a single-scale copy of a region). ``labels_array(layer)`` is the level-0
array of any Labels target (numpy only; zarr is imported when labels are made).
"""

from __future__ import annotations

import numpy as np

from napari_sam2._napari._placed import Box, shift, union
from napari_sam2.engine.windows import mask_box
from napari_sam2.io._chunks import is_zarr, memory_labels, stored_regions

#: Labels larger than this (bytes, int32) are made chunked: 512 MiB, e.g. one 11585 px plane,
#: or 2048 x 2048 x 32 frames. Smaller labels are a numpy array, as always.
LABELS_IN_MEMORY_BYTES = 512 * 2**20
#: Side of a labels chunk (pixels of one plane).
CHUNK = 1024


def needs_chunked(shape, dtype=np.int32) -> bool:
    """Whether labels of ``shape`` are too large for one numpy array."""
    return int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize \
        > LABELS_IN_MEMORY_BYTES


def chunked_labels(shape, dtype=np.int32):
    """An all-zero zarr array of ``shape`` in memory, storing only the chunks written."""
    shape = tuple(int(s) for s in shape)
    chunks = (1,) * (len(shape) - 2) + tuple(min(s, CHUNK) for s in shape[-2:])
    return memory_labels(shape, chunks, dtype)


def is_chunked(data) -> bool:
    """Whether ``data`` is a zarr array (read by stored chunks, never whole)."""
    return is_zarr(data)


def labels_array(target):
    """The full-resolution labels array of a Labels layer (level 0 when multiscale) or of
    any target with ``data``."""
    data = target.data
    return data[0] if getattr(target, "multiscale", False) else data


def _lead(key: tuple) -> tuple:
    return tuple(int(k) for k in key[:-2])


def label_box(data, key: tuple, label: int) -> Box | None:
    """Bounding box of ``label``'s pixels on the plane ``key`` of ``data`` (None: absent)."""
    if not is_chunked(data):
        return mask_box(np.asarray(data[key]) == int(label))
    boxes = []
    for region in stored_regions(data, _lead(key)):
        box = mask_box(np.asarray(data[region]) == int(label))
        if box is not None:
            boxes.append(shift(box, region[-2].start, region[-1].start))
    return union(*boxes)


def label_planes(data, label: int) -> list[tuple]:
    """Plane keys (ints for the non-spatial axes, then two full slices) where ``label`` is."""
    plane = (slice(None), slice(None))
    if not is_chunked(data):  # plane by plane: any array-like (numpy, a plane store)
        return [tuple(int(i) for i in lead) + plane for lead in np.ndindex(*data.shape[:-2])
                if (np.asarray(data[tuple(lead) + plane]) == int(label)).any()]
    leads = {region[:-2] for region in stored_regions(data)
             if (np.asarray(data[region]) == int(label)).any()}
    return [tuple(int(i) for i in lead) + plane for lead in sorted(leads)]


def max_label(data) -> int:
    """The largest value in ``data`` (0 when empty)."""
    if not is_chunked(data):
        arr = np.asarray(data)
        return int(arr.max()) if arr.size else 0
    return max((int(np.asarray(data[r]).max()) for r in stored_regions(data)), default=0)


def plane_centroids(data, key: tuple) -> dict[int, tuple[float, float]]:
    """{label: (row, col)} centre of mass of every label > 0 on the plane ``key``."""
    from napari_sam2._napari._tracks import plane_centroids as of_plane

    if not is_chunked(data):
        return of_plane(np.asarray(data[key]))
    sums: dict[int, list[float]] = {}
    for region in stored_regions(data, _lead(key)):
        block = np.asarray(data[region])
        r0, c0 = region[-2].start, region[-1].start
        for label, (r, c) in of_plane(block).items():
            n = float(np.count_nonzero(block == label))
            acc = sums.setdefault(label, [0.0, 0.0, 0.0])
            acc[0] += (r + r0) * n
            acc[1] += (c + c0) * n
            acc[2] += n
    return {k: (v[0] / v[2], v[1] / v[2]) for k, v in sorted(sums.items())}


class CoarseLevel:
    """A coarser level of chunked labels: pixel (i, j) of it is pixel (i f_r, j f_c) of level
    0, read from level 0's stored chunks only (the rest is 0). Array-like for napari."""

    def __init__(self, level0, shape):
        self.level0 = level0
        self.shape = tuple(int(s) for s in shape)
        self.dtype = level0.dtype
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.factors = tuple(max(1, round(a / b)) for a, b in
                             zip(level0.shape[-2:], self.shape[-2:]))

    def __array__(self, dtype=None, copy=None):
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        ranges = [range(*k.indices(n)) if isinstance(k, slice) else range(int(k), int(k) + 1)
                  for k, n in zip(key, self.shape)]
        out = np.zeros([len(r) for r in ranges], self.dtype)
        (fr, fc), (rows, cols) = self.factors, ranges[-2:]
        for region in stored_regions(self.level0):
            at = []
            for r, k in zip(ranges[:-2], region[:-2]):
                if k not in r:
                    break
                at.append(r.index(k))
            else:
                sub = self._sample(region, rows, fr, -2) + self._sample(region, cols, fc, -1)
                if sub[0] is None or sub[2] is None:
                    continue
                src = region[:-2] + (sub[0], sub[2])
                out[tuple(at) + (sub[1], sub[3])] = np.asarray(self.level0[src])
        squeeze = tuple(i for i, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(axis=squeeze) if squeeze else out

    @staticmethod
    def _sample(region, wanted: range, f: int, axis: int):
        """(level-0 slice in the chunk, slice of ``out``) for the coarse indices ``wanted``
        (step 1 or more) whose level-0 pixel ``i f`` falls in the chunk."""
        lo, hi = region[axis].start, region[axis].stop
        first, last = -(-lo // f), (hi - 1) // f  # coarse indices whose pixel is in the chunk
        step = wanted.step
        j0 = max(0, -(-(first - wanted.start) // step))
        j1 = min(len(wanted) - 1, (last - wanted.start) // step)
        if j1 < j0:
            return None, None
        return slice(wanted[j0] * f, wanted[j1] * f + 1, step * f), slice(j0, j1 + 1)


def labels_levels(level0, level_shapes) -> list:
    """Level 0 and a ``CoarseLevel`` per coarser image level (the labels' shape there)."""
    return [level0] + [CoarseLevel(level0, s) for s in level_shapes[1:]]


def display_levels(labels) -> list | None:
    """Levels for showing opened chunked labels whose planes are too large to draw whole
    (an int32 plane over ``LABELS_IN_MEMORY_BYTES``): level 0 and views 4, 16, 64... times
    coarser down to 2048 px or less; None for anything else (shown as it is)."""
    if not is_chunked(labels) or not needs_chunked(labels.shape[-2:]):
        return None
    shapes, f = [tuple(labels.shape)], 4
    while max(shapes[-1][-2:]) > 2048:
        shapes.append(tuple(labels.shape[:-2]) + tuple(-(-s // f) for s in labels.shape[-2:]))
        f *= 4
    return labels_levels(labels, shapes)


def new_labels(shape, level_shapes=()) -> object:
    """What the widget gives its new Labels layer for an image of non-channel ``shape``:
    a numpy array when small, else chunked: with levels when ``level_shapes`` has more than
    one (the image's own levels' non-channel shapes, finest first), or ``display_levels``
    when one plane is too large to draw whole (a single-scale huge image)."""
    if not needs_chunked(shape):
        return np.zeros(shape, np.int32)
    level0 = chunked_labels(shape)
    if len(level_shapes) > 1:
        return labels_levels(level0, level_shapes)
    levels = display_levels(level0)
    return level0 if levels is None else levels


def whole_frame_refusal(frame_shape, what: str) -> str | None:
    """Why ``what`` (an action that needs whole-frame masks) is refused on frames of
    ``frame_shape`` (H, W), or None when they are small enough (an int32 frame within
    ``LABELS_IN_MEMORY_BYTES``)."""
    if not needs_chunked(tuple(frame_shape)[-2:]):
        return None
    h, w = (int(v) for v in tuple(frame_shape)[-2:])
    gib = h * w * 4 / 2**30
    return (f"{what} needs whole-frame masks, and a frame of this image is {h} x {w} "
            f"({gib:.1f} GiB as int32 labels): not available on frames this large; click "
            "objects with a window (auto or pixels) and propagate them instead")
