"""Nuclei-like synthetic microscopy for the cases the first demo model never saw (issue 22).

    images, labels = make_nuclei_timelapse(n_frames=16, shape=(192, 256), drift=(0, 4), seed=1)
    volume, labels = make_nuclei_volume(shape=(48, 192, 192), n_objects=6, seed=2)

``synthetic.make_cell_timelapse`` draws smooth cells that move slowly in a fixed field of view,
and its ellipsoid volumes are thick enough that an 8-slice clip rarely sees an object end. Real
fluorescence nuclei differ in ways a model trained on that alone does not survive:

* **texture**: chromatin gives nuclei internal structure (bright speckles, dark nucleoli);
* **motion**: cells move several pixels a frame, and the whole field drifts with the stage;
* **scale**: nuclei from about 10 to 80 px on the model's input, often densely packed;
* **look**: background gradients, out-of-focus haze, blur and shot-noise levels vary;
* **ends along z**: in a stack each nucleus starts and ends at its own depth; beyond its ends
  only its out-of-focus glow remains, which the object score must learn to call absent.

Every function is deterministic from ``seed``. Labels are stable: object k is label k in every
frame or slice where it is visible, so a label stack is the tracking ground truth. Where two
nuclei meet, each pixel goes to the one it lies deeper inside (they touch, never share pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from napari_sam2.data.synthetic import _to_uint16, cell_patch, claim

__all__ = ["Look", "random_look", "make_nuclei_timelapse", "make_nuclei_volume"]

_BACKGROUND = 500.0  # mean background counts (before the look's gain)


@dataclass(frozen=True)
class Look:
    """How the microscope renders a scene (all drawn by ``random_look``).

    Attributes:
        gain: photons per count; below 1 the shot noise is stronger (dim, noisy images).
        read_noise: Gaussian read noise, counts (std).
        blur: optical blur in-plane, px (Gaussian sigma).
        gradient: strength of a linear background ramp (0 = flat), as a share of the background.
        haze: out-of-focus light, as a share of the nuclei's own signal spread widely around them.
        texture: chromatin texture strength (0 = smooth nuclei).
    """

    gain: float = 1.0
    read_noise: float = 25.0
    blur: float = 1.2
    gradient: float = 0.2
    haze: float = 0.1
    texture: float = 0.3


def random_look(rng: np.random.Generator) -> Look:
    """A random but plausible widefield/confocal look."""
    return Look(gain=float(np.exp(rng.uniform(np.log(0.15), np.log(2.0)))),
                read_noise=float(rng.uniform(5.0, 40.0)), blur=float(rng.uniform(0.6, 2.2)),
                gradient=float(rng.uniform(0.0, 0.8)), haze=float(rng.uniform(0.0, 0.35)),
                texture=float(rng.uniform(0.0, 0.6)))


def _texture_field(shape, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Zero-mean chromatin-like texture in about [-1, 1]: smoothed noise plus dark holes."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma=scale)
    noise /= max(float(noise.std()), 1e-6) * 2.5
    holes = ndimage.gaussian_filter((rng.random(shape) < 0.0015).astype(np.float32),
                                    sigma=2.0 * scale)
    holes /= max(float(holes.max()), 1e-6)
    return np.clip(noise - 1.2 * holes, -1.0, 1.0).astype(np.float32)


def _background(shape, rng: np.random.Generator, look: Look) -> np.ndarray:
    """(H, W) background counts: a tilted plane times a vignette."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = ramp - ramp.min()
    ramp = ramp / max(float(ramp.max()), 1e-6)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    vignette = 1.05 - 0.3 * r2 / max(float(r2.max()), 1e-6)
    return (_BACKGROUND * (1.0 + look.gradient * ramp) * vignette).astype(np.float32)


class _Nucleus:
    """One nucleus: outline, brightness, own texture, position in world coordinates."""

    def __init__(self, rng: np.random.Generator, y: float, x: float, diameter: float,
                 speed: tuple[float, float]):
        radius = diameter / 2
        self.a = radius * rng.uniform(1.0, 1.25)
        self.b = radius * rng.uniform(0.75, 1.0)
        self.theta = rng.uniform(0, np.pi)
        self.spin = rng.uniform(-0.05, 0.05)
        self.harm = [(k, rng.uniform(0.02, 0.07), rng.uniform(0, 2 * np.pi),
                      rng.uniform(-0.2, 0.2)) for k in (2, 3, 4)]
        self.brightness = rng.uniform(700, 5000)
        self.y, self.x = y, x
        v = rng.uniform(*speed)
        angle = rng.uniform(0, 2 * np.pi)
        self.vy, self.vx = v * np.sin(angle), v * np.cos(angle)
        self.speed = v
        reach = int(np.ceil(1.4 * self.a)) + 2
        self.texture = _texture_field((2 * reach + 1, 2 * reach + 1), rng,
                                      scale=max(0.8, radius / 8))
        self.reach = reach

    def step(self, rng: np.random.Generator, world) -> None:
        """Move one frame: a random walk that keeps its speed, reflecting at the world's edge."""
        h, w = world
        self.vy = 0.85 * self.vy + rng.normal(0, 0.3 + 0.15 * self.speed)
        self.vx = 0.85 * self.vx + rng.normal(0, 0.3 + 0.15 * self.speed)
        norm = np.hypot(self.vy, self.vx)
        if norm > 1e-6:
            self.vy, self.vx = self.vy * self.speed / norm, self.vx * self.speed / norm
        self.y, self.x = self.y + self.vy, self.x + self.vx
        if not self.a <= self.y <= h - self.a:
            self.vy, self.y = -self.vy, float(np.clip(self.y, self.a, h - self.a))
        if not self.a <= self.x <= w - self.a:
            self.vx, self.x = -self.vx, float(np.clip(self.x, self.a, w - self.a))
        self.theta += self.spin


def _place(rng: np.random.Generator, world, diameters, spacing: float, existing=()):
    """Centres (y, x, diameter) for ``diameters`` in ``world`` (H, W), each no closer than
    ``spacing`` x the mean diameter of two nuclei to the others and to ``existing`` (below 1:
    nuclei touch and press into each other); a nucleus that finds no room is left out."""
    h, w = world
    centres: list[tuple[float, float, float]] = list(existing)
    for d in np.minimum(diameters, 0.8 * min(h, w)):
        for _ in range(60):
            y, x = rng.uniform(0.6 * d, h - 0.6 * d), rng.uniform(0.6 * d, w - 0.6 * d)
            if all(np.hypot(y - cy, x - cx) >= spacing * (d + cd) / 2 for cy, cx, cd in centres):
                centres.append((float(y), float(x), float(d)))
                break
    return centres[len(existing):]


def make_nuclei_timelapse(*, n_frames: int = 16, shape=(192, 256), n_cells: int = 8,
                          diameter=(24.0, 48.0), speed=(0.5, 2.5), drift=(0.0, 0.0),
                          spacing: float = 1.1, look: Look | None = None,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A time-lapse of textured nuclei that move, possibly fast, under a drifting stage.

    Args:
        n_frames: T >= 1.
        shape: frame size (H, W), each >= 32.
        n_cells: nuclei in the field at frame 0 (fewer if they do not fit at ``spacing``).
        diameter: (smallest, largest) nucleus diameter, px.
        speed: (slowest, fastest) own speed of a nucleus, px per frame.
        drift: stage drift (dy, dx) px per frame: the whole scene moves by it; nuclei drift out
            of the field on one side and new ones come in on the other.
        spacing: minimum centre distance as a multiple of the mean diameter of two nuclei
            (below 1 they are densely packed and touch).
        look: the microscope's rendering (None: drawn by ``random_look`` from the seed).
        seed: the output is a pure function of the arguments.

    Returns:
        images: uint16 (T, H, W); labels: int32 (T, H, W), 0 = background, nucleus k = label k.
    """
    n_frames, n_cells = int(n_frames), int(n_cells)
    h, w = (int(s) for s in shape)
    if n_frames < 1 or n_cells < 1 or min(h, w) < 32:
        raise ValueError(f"need n_frames >= 1, n_cells >= 1 and a shape >= 32 px, got "
                         f"{n_frames}, {n_cells}, {shape}")
    rng = np.random.default_rng(seed)
    look = look if look is not None else random_look(rng)
    dy, dx = float(drift[0]), float(drift[1])
    # the world is the union of all views: the frame at t sees world[oy + dy t, ox + dx t]
    span_y, span_x = abs(dy) * (n_frames - 1), abs(dx) * (n_frames - 1)
    world = (h + int(np.ceil(span_y)) + 2, w + int(np.ceil(span_x)) + 2)
    oy, ox = (span_y if dy < 0 else 0.0) + 1, (span_x if dx < 0 else 0.0) + 1
    density = n_cells / (h * w)
    n_world = max(n_cells, int(round(density * world[0] * world[1])))
    diameters = np.sort(rng.uniform(diameter[0], diameter[1], size=n_world))[::-1]
    # the first n_cells are placed in frame 0's view, the rest anywhere in the world
    first = _place(rng, (h, w), diameters[:n_cells], spacing)
    first = [(y + oy, x + ox, d) for y, x, d in first]
    more = _place(rng, world, diameters[len(first):], spacing, existing=first)
    nuclei = [_Nucleus(rng, y, x, d, speed) for y, x, d in first + more]
    background = _background((h, w), rng, look)
    images = np.empty((n_frames, h, w), np.uint16)
    labels = np.zeros((n_frames, h, w), np.int32)
    for t in range(n_frames):
        vy, vx = oy + dy * t, ox + dx * t  # world position of the view's corner
        score = np.full((h, w), np.inf, np.float32)
        bright = np.zeros((h, w), np.float32)
        for k, nuc in enumerate(nuclei):
            _render(score, labels[t], bright, nuc, k + 1, t, nuc.y - vy, nuc.x - vx, look)
        haze = ndimage.gaussian_filter(bright, sigma=max(4.0, 0.5 * diameter[1])) * look.haze
        images[t] = _to_uint16(background + bright + haze, rng, (look.blur, look.blur),
                               gain=look.gain, read_noise=look.read_noise)
        for nuc in nuclei:
            nuc.step(rng, world)
    return images, labels


def _render(score, owner, bright, nuc: _Nucleus, label: int, t: int, cy: float, cx: float,
            look: Look) -> None:
    """Draw one nucleus centred at (cy, cx) of the frame where it is the closest outline."""
    patch = cell_patch(score.shape, cy, cx, nuc.a, nuc.b, nuc.theta, nuc.harm, t)
    if patch is None:
        return
    box, s = patch
    win = claim(score, owner, box, s, label)
    if not win.any():
        return
    # the nucleus's own texture, carried with it (its centre pixel at the texture's centre)
    iy, ix = int(round(cy)), int(round(cx))
    ty0 = box[0].start - iy + nuc.reach
    tx0 = box[1].start - ix + nuc.reach
    rows, cols = s.shape
    tex = np.zeros_like(s)
    ys, xs = slice(max(ty0, 0), min(ty0 + rows, nuc.texture.shape[0])), \
        slice(max(tx0, 0), min(tx0 + cols, nuc.texture.shape[1]))
    if ys.start < ys.stop and xs.start < xs.stop:
        tex[ys.start - ty0:ys.stop - ty0, xs.start - tx0:xs.stop - tx0] = nuc.texture[ys, xs]
    level = nuc.brightness * (1.0 - 0.35 * s * s) * (1.0 + look.texture * tex)
    bright[box][win] = level[win]


def make_nuclei_volume(*, shape=(48, 192, 192), n_objects: int = 6, diameter=(30.0, 60.0),
                       extent=(0.2, 0.5), z_blur: float = 2.0, stacked: bool = False,
                       look: Look | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A z-stack of textured nuclei that start and end at their own depths.

    Each nucleus is an ellipsoid whose z extent is a random share ``extent`` of the stack's
    depth, centred at a random depth inside the stack; above and below it only its
    out-of-focus light (blur along z, ``z_blur`` slices) and other nuclei remain. With
    ``stacked`` nuclei are packed in 3D as in tissue: one may lie right above another, so that
    where one ends the next one begins at about the same place in the plane (the case where a
    tracker slides from a nucleus onto the next); otherwise they stand side by side.

    Args:
        shape: (Z, H, W), Z >= 8, H, W >= 32.
        n_objects: nuclei (fewer if they do not fit side by side).
        diameter: (smallest, largest) in-plane diameter, px.
        extent: (shortest, longest) z extent as a share of Z.
        z_blur: Gaussian blur along z, slices (sigma).
        stacked: pack nuclei in 3D (above each other) instead of side by side.
        look: rendering (None: drawn from the seed).
        seed: the output is a pure function of the arguments.

    Returns:
        volume: uint16 (Z, H, W); labels: int32 (Z, H, W), 0 = background, nucleus k = label k.
    """
    d, h, w = (int(s) for s in shape)
    if d < 8 or min(h, w) < 32 or int(n_objects) < 1:
        raise ValueError(f"need shape (Z >= 8, H, W >= 32) and n_objects >= 1, got {shape}, "
                         f"{n_objects}")
    rng = np.random.default_rng(seed)
    look = look if look is not None else random_look(rng)
    diameters = np.sort(rng.uniform(diameter[0], diameter[1], size=int(n_objects)))[::-1]
    if stacked:
        centres = _place_3d(rng, (d, h, w), diameters, extent)
    else:  # side by side: a click on one is never a click on another at another depth
        centres = [(cy, cx, diam, *_depth(rng, d, extent))
                   for cy, cx, diam in _place(rng, (h, w), diameters, spacing=0.8)]
    score = np.full((d, h, w), np.inf, np.float32)
    labels = np.zeros((d, h, w), np.int32)
    bright = np.zeros((d, h, w), np.float32)
    texture = _texture_field((d, h, w), rng, scale=max(0.8, float(np.mean(diameter)) / 16))
    for k, (cy, cx, diam, cz, half_z) in enumerate(centres):
        a, b = diam / 2 * rng.uniform(1.0, 1.2), diam / 2 * rng.uniform(0.75, 1.0)
        theta = rng.uniform(0, np.pi)
        reach = 1.2 * a
        z0, z1 = int(max(0, np.floor(cz - half_z))), int(min(d, np.ceil(cz + half_z) + 1))
        y0, y1 = int(max(0, np.floor(cy - reach))), int(min(h, np.ceil(cy + reach) + 1))
        x0, x1 = int(max(0, np.floor(cx - reach))), int(min(w, np.ceil(cx + reach) + 1))
        zz, yy, xx = np.mgrid[z0:z1, y0:y1, x0:x1].astype(np.float32)
        ry, rx = yy - cy, xx - cx
        u = np.cos(theta) * rx + np.sin(theta) * ry
        v = -np.sin(theta) * rx + np.cos(theta) * ry
        s = np.sqrt((u / a) ** 2 + (v / b) ** 2 + ((zz - cz) / half_z) ** 2)
        region = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        win = claim(score, labels, region, s, k + 1)
        level = rng.uniform(700, 5000) * (1.0 - 0.35 * s * s) * (1.0 + look.texture
                                                                   * texture[region])
        bright[region][win] = level[win]
    haze = ndimage.gaussian_filter(bright, sigma=(z_blur, 6.0, 6.0)) * look.haze
    background = _background((h, w), rng, look)[None]
    volume = _to_uint16(background + bright + haze, rng, (z_blur, look.blur, look.blur),
                        gain=look.gain, read_noise=look.read_noise)
    return volume, labels


def _depth(rng: np.random.Generator, depth: int, extent) -> tuple[float, float]:
    """(centre z, half z extent) of a nucleus: its extent a share ``extent`` of ``depth``, its
    centre anywhere that keeps at least 60 % of it inside the stack."""
    half_z = max(1.5, 0.5 * depth * rng.uniform(*extent))
    return float(rng.uniform(half_z * 0.6, depth - half_z * 0.6)), float(half_z)


def _place_3d(rng: np.random.Generator, shape, diameters, extent):
    """(y, x, diameter, z, half z) of nuclei packed in 3D: two nuclei either stand apart in
    the plane or lie apart along z (one above the other)."""
    d, h, w = shape
    placed: list[tuple[float, float, float, float, float]] = []
    for diam in np.minimum(diameters, 0.8 * min(h, w)):
        for _ in range(60):
            y, x = rng.uniform(0.6 * diam, h - 0.6 * diam), rng.uniform(0.6 * diam, w - 0.6 * diam)
            z, half_z = _depth(rng, d, extent)
            if all(np.hypot(y - py, x - px) >= 0.85 * (diam + pd) / 2
                   or abs(z - pz) >= half_z + phz for py, px, pd, pz, phz in placed):
                placed.append((float(y), float(x), float(diam), z, half_z))
                break
    return placed
