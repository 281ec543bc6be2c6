"""Large fields with small moving cells, rendered lazily: only the pixels asked for exist.

    field = LargeFieldTimelapse(shape=(4096, 4096), n_frames=16, seed=0)
    field.shape, field.dtype                  # (16, 4096, 4096) uint16, nothing rendered yet
    crop = field[3, 1000:1256, 2000:2256]     # renders only the tiles under that crop
    box, mask = field.cell_mask(3, k=5)       # ground truth of cell 5 on frame 3, as a crop

The look follows ``synthetic.make_cell_timelapse`` (dim unevenly lit background, cells brighter
towards their centre, blur, shot and read noise, 16-bit), but cells are 15-30 px across in a
field of thousands of pixels, the scale at which a model that sees the whole frame resized to
256 or 1024 px loses them (issue 19).

Rendering is tile by tile (``TILE`` px squares): a tile's signal is drawn from the cells that
reach it, blurred with a margin, and its noise comes from a generator seeded by (seed, frame,
tile), so any crop equals the same crop of the whole frame, every pixel is a pure function of
the arguments, and a 50000 x 50000 field costs nothing until it is read. The object is
array-like (``shape``, ``dtype``, ``ndim``, ``__getitem__`` with integers and slices of step 1),
so ``dask.array.from_array(field, chunks=...)`` and ``TrackingSession`` take it as it is.
``tiles_rendered`` counts the tiles drawn (to check that a reader reads only what it needs).

Cells start apart on a jittered grid and move on their own smooth random walks, bouncing
off the borders; label k is cell k in every frame, the tracking ground truth (where two meet,
the later one is drawn on top and the labels say so).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from scipy import ndimage

from napari_sam2.data.synthetic import cell_patch

__all__ = ["LargeFieldTimelapse"]

TILE = 256  # rendering tile (px)
_BLUR = 1.2  # optical blur (px, Gaussian sigma)
_MARGIN = 5  # rendered around a tile so that the blur is seamless (>= 4 sigma)
_BACKGROUND = 600.0  # mean background counts
_READ_NOISE = 25.0  # Gaussian read noise (counts, std)


class LargeFieldTimelapse:
    """A lazily rendered (T, H, W) uint16 time-lapse of small cells, and its ground truth.

    Args:
        shape: (H, W) of a frame, each >= 64.
        n_frames: T >= 1.
        n_cells: number of cells; default one per 256 x 256 px of field (so 64 in 2048^2).
        diameter: (smallest, largest) cell diameter in pixels.
        seed: the output is a pure function of the arguments.
        cache_tiles: rendered tiles kept (LRU) so that overlapping reads do not redraw them.
    """

    dtype = np.dtype(np.uint16)
    ndim = 3

    def __init__(self, *, shape=(2048, 2048), n_frames: int = 16, n_cells: int | None = None,
                 diameter=(15.0, 30.0), seed: int = 0, cache_tiles: int = 64) -> None:
        h, w = (int(s) for s in shape)
        if min(h, w) < 64:
            raise ValueError(f"shape must be (H, W) with each side >= 64, got {tuple(shape)}")
        if int(n_frames) < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        d0, d1 = (float(v) for v in diameter)
        if not 4 <= d0 <= d1 <= min(h, w) / 4:
            raise ValueError(f"diameter must be (lo, hi) with 4 <= lo <= hi <= {min(h, w) / 4}, "
                             f"got {tuple(diameter)}")
        self.frame_shape = (h, w)
        self.n_frames = int(n_frames)
        self.shape = (self.n_frames, h, w)
        self.seed = int(seed)
        n = max(1, h * w // (256 * 256)) if n_cells is None else int(n_cells)
        if n < 1:
            raise ValueError(f"n_cells must be >= 1, got {n_cells}")
        self._cells = _draw_cells(n, (h, w), (d0, d1), self.n_frames, self.seed)
        self.n_cells = len(self._cells["a"])
        self.tiles_rendered = 0
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cache_tiles = int(cache_tiles)
        rng = np.random.default_rng([self.seed, 7])
        self._light = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))  # brightest point (rel.)

    def __len__(self) -> int:
        return self.n_frames

    # ------------------------------------------------------------------ ground truth
    def centre(self, t: int, k: int) -> tuple[float, float]:
        """(row, col) of cell ``k`` (1-based) on frame ``t``."""
        c = self._cells
        return float(c["y"][t, k - 1]), float(c["x"][t, k - 1])

    def diameter(self, k: int) -> float:
        """Long axis of cell ``k`` (px, before its slow growth)."""
        return float(2 * self._cells["a"][k - 1])

    def cell_mask(self, t: int, k: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Ground truth of cell ``k`` (1-based) on frame ``t``: box (r0, c0, r1, c1) (end
        exclusive) and its (r1 - r0, c1 - c0) bool mask. Cells never overlap, so this is
        ``labels(t) == k`` cropped."""
        self._check_t(t)
        if not 1 <= k <= self.n_cells:
            raise ValueError(f"cell {k} does not exist: cells are 1..{self.n_cells}")
        y, x = self.centre(t, k)
        reach = int(np.ceil(1.5 * self._cells["a"][k - 1] * (1 + abs(self._cells["g"][k - 1])
                                                               * t))) + 2
        h, w = self.frame_shape
        r0, r1 = max(0, int(y) - reach), min(h, int(y) + reach + 1)
        c0, c1 = max(0, int(x) - reach), min(w, int(x) + reach + 1)
        lab = self.labels_region(t, slice(r0, r1), slice(c0, c1))
        return (r0, c0, r1, c1), lab == k

    def labels_region(self, t: int, rows: slice, cols: slice) -> np.ndarray:
        """int32 labels (0 background, k = cell k) of a crop of frame ``t``."""
        self._check_t(t)
        (r0, r1), (c0, c1) = self._span(rows, 0), self._span(cols, 1)
        owner, _ = self._draw(t, r0, r1, c0, c1)
        return owner

    # ------------------------------------------------------------------ pixels
    def __getitem__(self, key):
        """Integers and step-1 slices over (T, H, W), as numpy indexing does."""
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 3 or any(k is Ellipsis or k is None for k in key):
            raise IndexError(f"LargeFieldTimelapse takes up to 3 integer / slice indices, "
                             f"got {key!r}")
        key = key + (slice(None),) * (3 - len(key))
        kt, kr, kc = key
        if isinstance(kt, slice):
            frames = range(*kt.indices(self.n_frames))
            return np.stack([self[t, kr, kc] for t in frames]) if len(frames) else \
                np.zeros((0,) + self[0, kr, kc].shape, np.uint16)
        t = self._check_t(kt)
        out_r = isinstance(kr, slice)
        out_c = isinstance(kc, slice)
        rows = kr if out_r else slice(self._int(kr, 0), self._int(kr, 0) + 1)
        cols = kc if out_c else slice(self._int(kc, 1), self._int(kc, 1) + 1)
        crop = self.region(t, rows, cols)
        return crop[(slice(None) if out_r else 0, slice(None) if out_c else 0)]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def region(self, t: int, rows: slice, cols: slice) -> np.ndarray:
        """(r1 - r0, c1 - c0) uint16 crop of frame ``t``; renders only the tiles under it."""
        t = self._check_t(t)
        (r0, r1), (c0, c1) = self._span(rows, 0), self._span(cols, 1)
        out = np.empty((r1 - r0, c1 - c0), np.uint16)
        for tr in range(r0 // TILE, (r1 - 1) // TILE + 1 if r1 > r0 else 0):
            for tc in range(c0 // TILE, (c1 - 1) // TILE + 1 if c1 > c0 else 0):
                tile = self._tile(t, tr, tc)
                y0, x0 = tr * TILE, tc * TILE
                ys, ye = max(r0, y0), min(r1, y0 + tile.shape[0])
                xs, xe = max(c0, x0), min(c1, x0 + tile.shape[1])
                out[ys - r0:ye - r0, xs - c0:xe - c0] = tile[ys - y0:ye - y0, xs - x0:xe - x0]
        return out

    # ------------------------------------------------------------------ internals
    def _check_t(self, t) -> int:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise IndexError(f"frame index must be an integer, got {t!r}")
        t = int(t) + (self.n_frames if t < 0 else 0)
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} is out of range 0..{self.n_frames - 1}")
        return t

    def _int(self, i, axis: int) -> int:
        n = self.frame_shape[axis]
        j = int(i) + (n if i < 0 else 0)
        if not 0 <= j < n:
            raise IndexError(f"index {i} is out of range for axis {axis + 1} of size {n}")
        return j

    def _span(self, s: slice, axis: int) -> tuple[int, int]:
        start, stop, step = s.indices(self.frame_shape[axis])
        if step != 1:
            raise IndexError(f"only step-1 slices are supported, got {s!r}")
        return start, max(start, stop)

    def _tile(self, t: int, tr: int, tc: int) -> np.ndarray:
        key = (t, tr, tc)
        tile = self._cache.get(key)
        if tile is not None:
            self._cache.move_to_end(key)
            return tile
        h, w = self.frame_shape
        y0, x0 = tr * TILE, tc * TILE
        y1, x1 = min(h, y0 + TILE), min(w, x0 + TILE)
        m = _MARGIN
        ys, xs = max(0, y0 - m), max(0, x0 - m)
        _, bright = self._draw(t, ys, min(h, y1 + m), xs, min(w, x1 + m))
        yy, xx = np.mgrid[ys:min(h, y1 + m), xs:min(w, x1 + m)].astype(np.float32)
        ly, lx = self._light
        r2 = (yy / h - ly) ** 2 + (xx / w - lx) ** 2
        illum = 1.1 - 0.35 * r2 / max(ly, 1 - ly) ** 2 / 2  # about [0.75, 1.1], smooth
        signal = (_BACKGROUND + bright * (1.0 - 0.01 * t)) * illum
        signal = ndimage.gaussian_filter(signal, _BLUR, mode="nearest")
        signal = signal[y0 - ys:y1 - ys, x0 - xs:x1 - xs]
        rng = np.random.default_rng([self.seed, t, tr, tc])
        noise = rng.standard_normal((2,) + signal.shape, dtype=np.float32)
        noisy = signal + np.sqrt(np.clip(signal, 0, None)) * noise[0] + _READ_NOISE * noise[1]
        tile = np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)
        self.tiles_rendered += 1
        if self._cache_tiles > 0:
            self._cache[key] = tile
            while len(self._cache) > self._cache_tiles:
                self._cache.popitem(last=False)
        return tile

    def _draw(self, t: int, r0: int, r1: int, c0: int, c1: int):
        """(owner int32, brightness float32) of the crop [r0, r1) x [c0, c1) of frame t."""
        c = self._cells
        owner = np.zeros((r1 - r0, c1 - c0), np.int32)
        bright = np.zeros((r1 - r0, c1 - c0), np.float32)
        scale = 1.0 + c["g"] * t
        reach = 1.35 * c["a"] * scale + 2
        ys, xs = c["y"][t], c["x"][t]
        near = np.nonzero((ys + reach > r0) & (ys - reach < r1) & (xs + reach > c0)
                          & (xs - reach < c1))[0]
        for i in near:
            _render(owner, bright, c, int(i), t, ys[i] - r0, xs[i] - c0, scale[i])
        return owner, bright


def _draw_cells(n: int, shape, diameter, n_frames: int, seed: int) -> dict:
    """Cell shapes and trajectories (T, n) for ``n`` cells placed apart in ``shape``."""
    h, w = shape
    rng = np.random.default_rng([seed, 1])
    a = rng.uniform(diameter[0], diameter[1], n) / 2  # long semi-axis
    b = a * rng.uniform(0.7, 0.95, n)
    margin = 1.6 * a + 2
    # place on a jittered grid so that cells start apart
    side = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / side))
    cell_h, cell_w = h / rows, w / side
    slots = rng.permutation(rows * side)[:n]
    y = (slots // side + rng.uniform(0.3, 0.7, n)) * cell_h
    x = (slots % side + rng.uniform(0.3, 0.7, n)) * cell_w
    y, x = np.clip(y, margin, h - margin), np.clip(x, margin, w - margin)
    speed = rng.uniform(0.5, 2.0, n) * a / 6  # a few px a frame, more for larger cells
    ang = rng.uniform(0, 2 * np.pi, n)
    vy, vx = speed * np.sin(ang), speed * np.cos(ang)
    ys, xs = np.empty((n_frames, n)), np.empty((n_frames, n))
    for t in range(n_frames):
        ys[t], xs[t] = y, x
        vy = 0.9 * vy + rng.normal(0, 0.2, n) * a / 10
        vx = 0.9 * vx + rng.normal(0, 0.2, n) * a / 10
        y, x = y + vy, x + vx
        out_y = (y < margin) | (y > h - margin)
        out_x = (x < margin) | (x > w - margin)
        vy, vx = np.where(out_y, -vy, vy), np.where(out_x, -vx, vx)
        y, x = np.clip(y, margin, h - margin), np.clip(x, margin, w - margin)
    return {"a": a, "b": b, "y": ys, "x": xs,
            "theta": rng.uniform(0, np.pi, n), "spin": rng.uniform(-0.08, 0.08, n),
            "harm": rng.uniform([0.03, 0, -0.3], [0.09, 2 * np.pi, 0.3], (n, 3, 3)),
            "level": rng.uniform(1500, 6000, n), "g": rng.uniform(-0.01, 0.012, n)}


def _render(owner, bright, c: dict, i: int, t: int, cy: float, cx: float, scale: float) -> None:
    """Draw cell ``i`` (label i + 1) into the crop arrays, centre (cy, cx) in crop pixels."""
    harmonics = [(k, *h) for k, h in zip((2, 3, 4), c["harm"][i])]
    patch = cell_patch(owner.shape, cy, cx, c["a"][i] * scale, c["b"][i] * scale,
                       c["theta"][i] + c["spin"][i] * t, harmonics, t)
    if patch is None:
        return
    box, s = patch
    inside = s < 1.0
    owner[box][inside] = i + 1
    bright[box][inside] = (c["level"][i] * (1.0 - 0.45 * s * s))[inside]
