"""Random raw sequences from the nuclei generators (``data/nuclei.py``) for training.

``SyntheticClips`` draws a share ``nuclei_fraction`` of its clips here (issue 22). Each function
returns raw ``(images (T, H, W) uint16, labels (T, H, W) int32)``; ``SyntheticClips`` resizes,
normalises, flips and picks the objects as for its other sources.

What the draws cover, on the model's ``S`` px input (S = 256 for ``sam2_demo``):

* ``nuclei_sequence``: nucleus diameters log-uniform over 10-80 px on the input (frames up to
  512 px for single images, 320 px for clips), area fractions 0.1-0.45, spacings 0.85-1.4
  (below 1 nuclei are packed and touch), own speed up to 5 px per frame on the input, a stage
  drift of up to 6 px per frame on half of the clips, and a random ``Look`` (gain, read noise,
  blur, gradient, haze, texture).
* ``z_end_sequence``: a short stack of nuclei with their own depth extents (60 % packed in 3D,
  one above another, as in tissue), and a clip that starts inside one nucleus and runs past its
  end (z stride 1-3), so the object score learns that an object which has ended, with only its
  glow or the next nucleus below left, is absent.

Half of the video clips map intensities with one range for the whole clip (as the plugin does
with the layer's contrast limits), the other half frame by frame (the engine's default).
"""

from __future__ import annotations

import numpy as np

from napari_sam2.data.nuclei import make_nuclei_timelapse, make_nuclei_volume

__all__ = ["nuclei_sequence", "z_end_sequence"]

_IMAGE_SHAPES = ((192, 256), (256, 256), (256, 320), (320, 320), (384, 384), (512, 512))
_CLIP_SHAPES = ((192, 256), (256, 256), (224, 288), (256, 320), (320, 320))


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def nuclei_sequence(rng: np.random.Generator, image_size: int, n_frames: int,
                    stride: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured-nuclei time-lapse of ``(n_frames - 1) * stride + 1`` frames, every
    ``stride``-th kept (one frame for image steps)."""
    h, w = _pick(rng, _IMAGE_SHAPES if n_frames == 1 else _CLIP_SHAPES)
    to_frame = max(h, w) / image_size  # input px -> frame px
    d_input = float(np.exp(rng.uniform(np.log(10.0), np.log(80.0))))
    d_lo, d_hi = 0.8 * d_input * to_frame, 1.25 * d_input * to_frame
    fill = rng.uniform(0.1, 0.45)
    n_cells = int(np.clip(round(fill * h * w / (np.pi / 4 * (d_lo + d_hi) ** 2 / 4)), 1, 60))
    speed_max = rng.uniform(0.5, 5.0) * to_frame
    drift = (0.0, 0.0)
    if rng.random() < 0.5:
        mag, angle = rng.uniform(0.0, 6.0) * to_frame, rng.uniform(0, 2 * np.pi)
        drift = (mag * np.sin(angle), mag * np.cos(angle))
    n_total = (n_frames - 1) * stride + 1
    images, labels = make_nuclei_timelapse(
        n_frames=n_total, shape=(h, w), n_cells=n_cells, diameter=(d_lo, d_hi),
        speed=(0.2 * speed_max, speed_max), drift=drift, spacing=float(rng.uniform(0.85, 1.4)),
        seed=int(rng.integers(0, 2**31 - 1)))
    return images[::stride], labels[::stride]


def z_end_sequence(rng: np.random.Generator, image_size: int,
                   n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_frames`` slices of a nuclei stack, starting inside one nucleus and running past
    one of its ends (up or down the stack at random)."""
    stride = int(rng.choice([1, 1, 2, 3]))
    span = (n_frames - 1) * stride + 1
    depth = span + int(rng.integers(6, 16))
    h, w = _pick(rng, _CLIP_SHAPES[:3])
    to_frame = max(h, w) / image_size
    d_input = rng.uniform(20.0, 70.0)
    stacked = bool(rng.random() < 0.6)
    n_objects = int(rng.integers(6, 24) if stacked else rng.integers(3, 10))
    volume, labels = make_nuclei_volume(
        shape=(depth, h, w), n_objects=n_objects,
        diameter=(0.8 * d_input * to_frame, 1.25 * d_input * to_frame),
        extent=(0.15, 0.6), z_blur=float(rng.uniform(1.0, 3.0)), stacked=stacked,
        seed=int(rng.integers(0, 2**31 - 1)))
    if rng.random() < 0.5:  # run towards the top of the stack instead
        volume, labels = volume[::-1], labels[::-1]
    present = (labels[..., None] == np.arange(1, labels.max() + 1)).any((1, 2))  # (Z, N)
    first = present.argmax(0)
    last = depth - 1 - present[::-1].argmax(0)
    # a nucleus the clip can start inside: its first slice leaves room for the whole clip
    ids = [k for k in range(present.shape[1]) if present[:, k].any() and first[k] <= depth - span]
    if not ids:
        return volume[:span:stride], labels[:span:stride]
    k = _pick(rng, ids)
    # start inside it, late enough that its end falls inside the clip where the stack allows
    lo = max(int(first[k]), int(last[k]) - span + 2)
    hi = min(int(last[k]), depth - span)
    start = int(rng.integers(min(lo, hi), hi + 1))
    return volume[start:start + span:stride], labels[start:start + span:stride]
