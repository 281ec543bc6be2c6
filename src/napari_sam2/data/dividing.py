"""Deterministic synthetic time-lapses of dividing cells, with the lineage in CTC form.

A dividing cell (the mother) elongates over ``PINCH_FRAMES`` frames: its outline becomes two
overlapping lobes whose centres move apart along its long axis while they shrink towards the
daughters' size, so it goes round -> oval -> peanut with a narrowing waist. On the division
frame the lobes no longer touch (a gap of ``GAP`` pixels): they are the two daughters, new
tracks with the mother as parent, which move apart and then drift like the other cells. Images
look like those of ``synthetic.make_cell_timelapse`` (same background, blur and noise).

Labels are numbered by track as in the Cell Tracking Challenge (CTC): the mother keeps its
label up to the frame before the division, each daughter has a new label from the division
frame on. The lineage is an (N, 4) array of CTC ``res_track.txt`` rows ``L B E P`` (label,
first frame, last frame, parent label or 0).
"""

from __future__ import annotations

import numpy as np

from napari_sam2.data.synthetic import (
    _BACKGROUND,
    _check_shape,
    _illumination,
    _to_uint16,
    claim,
)

__all__ = ["GAP", "PINCH_FRAMES", "make_dividing_timelapse"]

PINCH_FRAMES = 5  # frames from the first elongation to the division
GAP = 3.0  # pixels between the daughters' outlines on the division frame
_SPLIT_SPEED = 1.5  # pixels per frame by which the daughters' centres move apart at first


class _Blob:
    """One track (a cell between divisions): position, size, drift, look."""

    def __init__(self, rng: np.random.Generator, y: float, x: float, radius: float,
                 brightness: float, label: int) -> None:
        self.y, self.x, self.r = y, x, radius
        speed = rng.uniform(0.3, 1.0)
        angle = rng.uniform(0, 2 * np.pi)
        self.vy, self.vx = speed * np.sin(angle), speed * np.cos(angle)
        self.brightness = brightness
        self.label = label
        self.harm = [(k, rng.uniform(0.02, 0.05), rng.uniform(0, 2 * np.pi)) for k in (2, 3)]
        self.division: int | None = None  # frame on which it divides
        self.axis = rng.uniform(0, np.pi)  # direction of the division

    def step(self, rng: np.random.Generator, shape: tuple[int, int]) -> None:
        h, w = shape
        self.vy = 0.85 * self.vy + rng.normal(0, 0.2)
        self.vx = 0.85 * self.vx + rng.normal(0, 0.2)
        m = 1.6 * self.r
        self.y, self.x = self.y + self.vy, self.x + self.vx
        if not m <= self.y <= h - m:
            self.vy, self.y = -self.vy, float(np.clip(self.y, m, h - m))
        if not m <= self.x <= w - m:
            self.vx, self.x = -self.vx, float(np.clip(self.x, m, w - m))

    def lobes(self, t: int) -> list[tuple[float, float, float]]:
        """(cy, cx, radius) of the lobes that make up the outline on frame ``t``."""
        if self.division is None or t < self.division - PINCH_FRAMES:
            return [(self.y, self.x, self.r)]
        p = (t - (self.division - PINCH_FRAMES) + 1) / PINCH_FRAMES  # (0, 1) before division
        rd = daughter_radius(self.r)
        radius = self.r + (rd - self.r) * p
        half = p * (rd - 0.5)  # lobes just touch (waist of ~2 px) on the last frame
        dy, dx = half * np.sin(self.axis), half * np.cos(self.axis)
        return [(self.y + dy, self.x + dx, radius), (self.y - dy, self.x - dx, radius)]


def daughter_radius(r: float) -> float:
    """A daughter's radius: a little more than half the mother's area."""
    return r * 0.78


def _render(score, owner, bright, blob: _Blob, t: int) -> None:
    """Write ``blob`` into the frame where it is the nearest object (normalised radius < 1).

    The outline is the union of the lobes; the brightness falls off with the distance to the
    segment between the lobe centres (one continuous cytoplasm, no crease at the waist).
    """
    h, w = score.shape
    lobes = blob.lobes(t)
    (ay, ax, _), (by, bx, _) = lobes[0], lobes[-1]
    for cy, cx, r in lobes:
        reach = 1.2 * r
        y0, y1 = int(max(0, cy - reach)), int(min(h, cy + reach + 2))
        x0, x1 = int(max(0, cx - reach)), int(min(w, cx + reach + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        phi = np.arctan2(dy, dx)
        wobble = 1.0 + sum(a * np.cos(k * phi + ph + 0.1 * t) for k, a, ph in blob.harm)
        s = np.sqrt(dy * dy + dx * dx) / (r * wobble)
        win = claim(score, owner, (slice(y0, y1), slice(x0, x1)), s, blob.label)
        # distance to the segment a-b (a point for a round cell), relative to the radius
        vy, vx = by - ay, bx - ax
        u = np.clip(((yy - ay) * vy + (xx - ax) * vx) / max(vy * vy + vx * vx, 1e-9), 0, 1)
        d = np.hypot(yy - ay - u * vy, xx - ax - u * vx) / (r * wobble)
        bright[y0:y1, x0:x1][win] = (blob.brightness * (1.0 - 0.45 * np.minimum(d, 1) ** 2))[win]


def _place(rng: np.random.Generator, n: int, shape: tuple[int, int],
           radius: float) -> list[tuple[float, float]]:
    """``n`` centres on a jittered grid, at least ~2.5 radii from each other."""
    h, w = shape
    cols = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / cols))
    cells = rng.permutation(rows * cols)[:n]
    out = []
    for c in cells:
        i, j = divmod(int(c), cols)
        cy = (i + 0.5) * h / rows + rng.uniform(-0.15, 0.15) * h / rows
        cx = (j + 0.5) * w / cols + rng.uniform(-0.15, 0.15) * w / cols
        m = 1.6 * radius
        out.append((float(np.clip(cy, m, h - m)), float(np.clip(cx, m, w - m))))
    return out


def make_dividing_timelapse(*, n_frames: int = 32, shape: tuple[int, int] = (192, 256),
                            n_cells: int = 4, n_dividing: int | None = None,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fluorescence-like time-lapse in which some cells divide once.

    Args:
        n_frames: T (>= 2 * PINCH_FRAMES + 4 = 14).
        shape: frame size (H, W), each >= 64.
        n_cells: cells on frame 0 (>= 1).
        n_dividing: how many of them divide (default ``n_cells // 2 + 1``, at most
            ``n_cells``); each divides once, on a frame drawn in the middle of the sequence
            (between 30 % and 65 % of T, and at least PINCH_FRAMES + 1).
        seed: random seed; the output is a pure function of the arguments.

    Returns:
        images: uint16 (T, H, W).
        labels: int32 (T, H, W), numbered by track (CTC): cells 1..n_cells, daughters
            n_cells + 1, ... in the order of their mothers.
        tracks: int64 (N, 4) rows ``L B E P`` (label, first frame, last frame, parent or 0).
    """
    n_frames, n_cells = int(n_frames), int(n_cells)
    if n_frames < 2 * PINCH_FRAMES + 4:
        raise ValueError(f"n_frames must be >= {2 * PINCH_FRAMES + 4}, got {n_frames}")
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    n_div = n_cells // 2 + 1 if n_dividing is None else int(n_dividing)
    if not 0 <= n_div <= n_cells:
        raise ValueError(f"n_dividing must be in 0..{n_cells}, got {n_dividing}")
    h, w = _check_shape(shape, 2, 64, "shape")
    rng = np.random.default_rng(seed)
    radius = float(np.clip(np.sqrt(h * w / (n_cells * np.pi)) * 0.25, 8.0, 0.12 * min(h, w)))
    blobs = []
    for k, (cy, cx) in enumerate(_place(rng, n_cells, (h, w), radius * 1.15)):
        blobs.append(_Blob(rng, cy, cx, radius * rng.uniform(0.9, 1.15),
                           rng.uniform(2500, 6000), k + 1))
    lo = max(PINCH_FRAMES + 1, int(0.3 * n_frames))
    hi = max(lo + 1, int(0.65 * n_frames))
    for b in rng.permutation(blobs)[:n_div]:
        b.division = int(rng.integers(lo, hi))
    illum = _illumination((h, w), rng)
    images = np.empty((n_frames, h, w), np.uint16)
    labels = np.zeros((n_frames, h, w), np.int32)
    rows = {b.label: [b.label, 0, n_frames - 1, 0] for b in blobs}
    live = list(blobs)
    next_label = n_cells + 1
    for t in range(n_frames):
        for b in [b for b in live if b.division == t]:  # the mother becomes two daughters
            live.remove(b)
            rows[b.label][2] = t - 1
            rd = daughter_radius(b.r)
            for sign in (1, -1):
                half = rd + GAP / 2
                d = _Blob(rng, b.y + sign * half * np.sin(b.axis),
                          b.x + sign * half * np.cos(b.axis), rd, b.brightness, next_label)
                d.vy = sign * _SPLIT_SPEED / 2 * np.sin(b.axis) + 0.5 * b.vy
                d.vx = sign * _SPLIT_SPEED / 2 * np.cos(b.axis) + 0.5 * b.vx
                d.harm = b.harm
                rows[next_label] = [next_label, t, n_frames - 1, b.label]
                live.append(d)
                next_label += 1
        score = np.full((h, w), np.inf, np.float32)
        bright = np.zeros((h, w), np.float32)
        for b in live:
            _render(score, labels[t], bright, b, t)
        signal = (_BACKGROUND + bright * (1.0 - 0.005 * t)) * illum
        images[t] = _to_uint16(signal, rng, blur=(1.2, 1.2))
        for b in live:
            if b.division is None or t < b.division - PINCH_FRAMES:
                b.step(rng, (h, w))
    tracks = np.array(sorted(rows.values()), np.int64).reshape(-1, 4)
    return images, labels, tracks
