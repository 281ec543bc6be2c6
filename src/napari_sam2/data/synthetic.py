"""Deterministic synthetic microscopy data: cell time-lapses and ellipsoid volumes.

Everything here is numpy + scipy only and deterministic from ``seed``. The images look like
widefield fluorescence: a dim, unevenly lit background, cells brighter towards their centre,
optical blur, photon (Poisson) and read (Gaussian) noise, stored as 16-bit intensities.

Label ids are stable over time (cell ``k`` is label ``k`` in every frame), so a label stack is
also the tracking ground truth. In a time-lapse with two or more cells, the last cell leaves the
field through the right edge and comes back; cells 1 and 2 start touching and move together.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["make_cell_timelapse", "make_ellipsoid_volume"]

_BACKGROUND = 600.0  # mean background counts
_READ_NOISE = 25.0  # Gaussian read noise (counts, std)


def _check_shape(shape, ndim: int, minimum: int, name: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim or min(shape) < minimum:
        raise ValueError(f"{name} must be {ndim} sizes each >= {minimum}, got {shape}")
    return shape


def _to_uint16(signal: np.ndarray, rng: np.random.Generator, blur: tuple[float, ...], *,
               gain: float = 1.0, read_noise: float = _READ_NOISE) -> np.ndarray:
    """Blur an expected-count map, add shot noise (Poisson on ``gain`` photons per count) and
    Gaussian read noise, clip to uint16."""
    signal = ndimage.gaussian_filter(signal.astype(np.float32), sigma=blur)
    photons = rng.poisson(np.clip(signal, 0, None) * gain).astype(np.float32)
    noisy = photons if gain == 1.0 else photons / gain
    noisy += rng.normal(0.0, read_noise, size=signal.shape).astype(np.float32)
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def claim(score: np.ndarray, owner: np.ndarray, region, s: np.ndarray, label: int) -> np.ndarray:
    """Give ``label`` the pixels of ``region`` that lie inside its outline (``s`` < 1, the
    normalised distance over the region) deeper than any object claimed there before (``s``
    below ``score``), so touching objects never share a pixel. Updates ``score`` and ``owner``
    in place; returns the claimed pixels (bool, ``s``'s shape)."""
    sub = score[region]
    win = (s < 1.0) & (s < sub)
    sub[win] = s[win]
    owner[region][win] = label
    return win


def _illumination(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative illumination field (H, W) in about [0.75, 1.1]."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    return (1.1 - 0.35 * r2 / r2.max()).astype(np.float32)


class _Cell:
    """One cell's trajectory and shape parameters (all in pixels and radians)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], radius: float):
        h, w = shape
        self.a = radius * rng.uniform(0.95, 1.3)  # semi-axes
        self.b = radius * rng.uniform(0.7, 0.95)
        self.margin = 1.3 * self.a
        self.y = rng.uniform(self.margin, max(self.margin + 1, h - self.margin))
        self.x = rng.uniform(self.margin, max(self.margin + 1, w - self.margin))
        speed = rng.uniform(0.6, 2.2)
        angle = rng.uniform(0, 2 * np.pi)
        self.vy, self.vx = speed * np.sin(angle), speed * np.cos(angle)
        self.theta = rng.uniform(0, np.pi)
        self.spin = rng.uniform(-0.08, 0.08)
        # shape harmonics k = 2, 3, 4: amplitude, phase, angular speed
        self.harm = [(k, rng.uniform(0.03, 0.09), rng.uniform(0, 2 * np.pi),
                      rng.uniform(-0.3, 0.3)) for k in (2, 3, 4)]
        self.brightness = rng.uniform(1500, 6000)
        self.growth = rng.uniform(-0.01, 0.012)  # relative size change per frame

    def step(self, rng: np.random.Generator, shape: tuple[int, int]) -> None:
        """Move one frame: smooth random walk, reflecting at the borders."""
        h, w = shape
        self.vy = 0.9 * self.vy + rng.normal(0, 0.35)
        self.vx = 0.9 * self.vx + rng.normal(0, 0.35)
        self.y += self.vy
        self.x += self.vx
        lo_y, hi_y = self.margin, max(self.margin, h - self.margin)
        lo_x, hi_x = self.margin, max(self.margin, w - self.margin)
        if self.y < lo_y or self.y > hi_y:
            self.vy = -self.vy
            self.y = float(np.clip(self.y, lo_y, hi_y))
        if self.x < lo_x or self.x > hi_x:
            self.vx = -self.vx
            self.x = float(np.clip(self.x, lo_x, hi_x))
        self.theta += self.spin


def shape_distance(dy, dx, a: float, b: float, theta: float, harmonics, t: int) -> np.ndarray:
    """Distance from a cell's centre normalised by its outline (< 1 inside): an ellipse of
    semi-axes (a, b) turned by ``theta``, its radius wobbling with ``harmonics`` = (k,
    amplitude, phase, angular speed) at time ``t``. ``dy``, ``dx``: offsets from the centre."""
    phi = np.arctan2(dy, dx) - theta
    ellipse_r = a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)
    wobble = 1.0
    for k, amp, phase, omega in harmonics:
        wobble = wobble + amp * np.cos(k * phi + phase + omega * t)
    return np.sqrt(dy * dy + dx * dx) / (ellipse_r * wobble)


def cell_patch(frame_shape, cy: float, cx: float, a: float, b: float, theta: float,
               harmonics, t: int):
    """The pixels around a cell centred at (cy, cx) and its normalised distance there.

    Returns ``(box, s)``: ``box`` the (rows, cols) slices of the cell's reach (1.35 ``a``)
    clipped to ``frame_shape`` (H, W), ``s`` (rows, cols) float32 from ``shape_distance``
    (< 1 inside the cell); None when the reach lies outside the frame."""
    h, w = frame_shape
    reach = 1.35 * a
    y0, y1 = int(max(0, np.floor(cy - reach))), int(min(h, np.ceil(cy + reach) + 1))
    x0, x1 = int(max(0, np.floor(cx - reach))), int(min(w, np.ceil(cx + reach) + 1))
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), shape_distance(yy - cy, xx - cx, a, b, theta,
                                                          harmonics, t)


def _render_cell(score: np.ndarray, owner: np.ndarray, bright: np.ndarray, cell: _Cell,
                 label: int, t: int, cy: float, cx: float) -> None:
    """Write one cell into the frame where it is the closest cell (normalised radius < 1)."""
    scale = 1.0 + cell.growth * t
    patch = cell_patch(score.shape, cy, cx, cell.a * scale, cell.b * scale, cell.theta,
                       cell.harm, t)
    if patch is None:
        return
    box, s = patch
    win = claim(score, owner, box, s, label)
    # brighter towards the centre, a little texture from the shape phase
    level = cell.brightness * (1.0 - 0.45 * s * s)
    bright[box][win] = level[win]


def make_cell_timelapse(*, n_frames: int = 16, shape: tuple[int, int] = (192, 256),
                        n_cells: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence-like time-lapse of moving, deforming, touching cells.

    Args:
        n_frames: number of frames T (>= 1).
        shape: frame size (H, W), each >= 32.
        n_cells: number of cells (>= 1). Cells 1 and 2 start touching; with 2 or more cells
            the last one leaves the field through the right edge in the middle third of the
            sequence and comes back.
        seed: random seed; the output is a pure function of the arguments.

    Returns:
        images: uint16 (T, H, W).
        labels: int32 (T, H, W), 0 = background, cell k = label k in every frame it is visible.
    """
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if int(n_cells) < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    h, w = _check_shape(shape, 2, 32, "shape")
    n_frames, n_cells = int(n_frames), int(n_cells)
    rng = np.random.default_rng(seed)
    radius = float(np.clip(np.sqrt(h * w / (n_cells * np.pi)) * 0.42, 5.0, 0.2 * min(h, w)))
    cells = [_Cell(rng, (h, w), radius * rng.uniform(0.8, 1.15)) for _ in range(n_cells)]
    if n_cells >= 2:  # cells 1 and 2 touch: put 2 against 1, moving with it
        c1, c2 = cells[0], cells[1]
        ang = rng.uniform(0, 2 * np.pi)
        gap = 0.9 * (c1.b + c2.b)
        c2.y = float(np.clip(c1.y + gap * np.sin(ang), c2.margin, h - c2.margin))
        c2.x = float(np.clip(c1.x + gap * np.cos(ang), c2.margin, w - c2.margin))
        c2.vy, c2.vx = c1.vy, c1.vx
    leaver = cells[-1] if n_cells >= 2 else None
    illum = _illumination((h, w), rng)
    images = np.empty((n_frames, h, w), np.uint16)
    labels = np.zeros((n_frames, h, w), np.int32)
    base_y = leaver.y if leaver is not None else 0.0
    for t in range(n_frames):
        score = np.full((h, w), np.inf, np.float32)
        bright = np.zeros((h, w), np.float32)
        for k, cell in enumerate(cells):
            cy, cx = cell.y, cell.x
            if cell is leaver:  # exits right, stays out, comes back (frames ~ T/4 .. 3T/4 out)
                u = np.sin(np.pi * t / max(n_frames - 1, 1))
                cx = w - 1.6 * cell.a + 4.5 * cell.a * u
                cy = base_y + 0.3 * cell.a * np.sin(2 * np.pi * t / max(n_frames, 2))
            _render_cell(score, labels[t], bright, cell, k + 1, t, cy, cx)
        bleach = 1.0 - 0.01 * t
        signal = (_BACKGROUND + bright * bleach) * illum
        images[t] = _to_uint16(signal, rng, blur=(1.2, 1.2))
        y_before, x_before = cells[0].y, cells[0].x
        for k, cell in enumerate(cells):
            if cell is not leaver and not (k == 1 and n_cells >= 2):
                cell.step(rng, (h, w))
        if n_cells >= 2:  # the touching pair moves together (cell 2 follows cell 1)
            c2 = cells[1]
            c2.y = float(np.clip(c2.y + cells[0].y - y_before, c2.margin, h - c2.margin))
            c2.x = float(np.clip(c2.x + cells[0].x - x_before, c2.margin, w - c2.margin))
            c2.theta += c2.spin
    return images, labels


def make_ellipsoid_volume(*, shape: tuple[int, int, int] = (32, 160, 160), n_objects: int = 6,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 3D stack of randomly oriented ellipsoids, blurred more along z than in-plane.

    Args:
        shape: volume size (Z, H, W), each >= 8.
        n_objects: number of ellipsoids (>= 1); where two overlap, each voxel goes to the one
            whose surface it is deeper inside, so objects touch but never share voxels.
        seed: random seed.

    Returns:
        volume: uint16 (Z, H, W).
        labels: int32 (Z, H, W), 0 = background, object k = label k.
    """
    if int(n_objects) < 1:
        raise ValueError(f"n_objects must be >= 1, got {n_objects}")
    d, h, w = _check_shape(shape, 3, 8, "shape")
    rng = np.random.default_rng(seed)
    base = float(np.clip(np.sqrt(h * w / (int(n_objects) * np.pi)) * 0.45, 3.0, 0.25 * min(h, w)))
    score = np.full((d, h, w), np.inf, np.float32)
    labels = np.zeros((d, h, w), np.int32)
    bright = np.zeros((d, h, w), np.float32)
    for k in range(int(n_objects)):
        radii = np.array([min(base * rng.uniform(0.5, 0.9), 0.35 * d),
                          base * rng.uniform(0.7, 1.2), base * rng.uniform(0.7, 1.2)], np.float32)
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rot = rot.astype(np.float32)
        reach = float(radii.max()) * 1.05
        center = np.array([rng.uniform(min(reach, d / 2), max(d - reach, d / 2)),
                           rng.uniform(min(reach, h / 2), max(h - reach, h / 2)),
                           rng.uniform(min(reach, w / 2), max(w - reach, w / 2))], np.float32)
        lo = np.maximum(0, np.floor(center - reach)).astype(int)
        hi = np.minimum((d, h, w), np.ceil(center + reach) + 1).astype(int)
        grid = np.stack(np.meshgrid(*[np.arange(lo[i], hi[i], dtype=np.float32) for i in range(3)],
                                    indexing="ij"), axis=-1) - center  # (z, y, x, 3)
        local = grid @ rot  # coordinates in the ellipsoid's frame
        s = np.sqrt(((local / radii) ** 2).sum(-1))
        region = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        win = claim(score, labels, region, s, k + 1)
        bright[region][win] = (rng.uniform(1500, 6000) * (1.0 - 0.4 * s * s))[win]
    illum = _illumination((h, w), rng)[None]
    signal = (_BACKGROUND + bright) * illum
    volume = _to_uint16(signal, rng, blur=(1.5, 1.0, 1.0))
    return volume, labels
