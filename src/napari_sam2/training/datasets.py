"""Training clips: short sequences of model-ready frames with per-object ground-truth masks.

A ``Clip`` is what one training sequence needs: ``T`` frames resized to the model's ``S x S``
input and normalised exactly as the engine does at inference (per-frame min/max -> [0, 1],
bilinear antialiased resize, ImageNet normalisation), and ``K`` object masks per frame at the
same resolution. Two sources produce clips:

* ``SyntheticClips``: endless clips from ``napari_sam2.data.synthetic`` (cell time-lapses and
  ellipsoid volumes sliced along z), random sizes, densities, strides, directions and flips;
* ``StackClips``: clips cut from the user's own image + label stacks (fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_sam2.data.synthetic import make_cell_timelapse, make_ellipsoid_volume
from napari_sam2.engine.transforms import normalize_imagenet, resize_to_model
from napari_sam2.training.nuclei_clips import nuclei_sequence, z_end_sequence

__all__ = ["Clip", "frames_to_model", "labels_to_masks", "SyntheticClips", "StackClips"]

_SHAPES = ((192, 256), (256, 256), (160, 224), (224, 192), (256, 320), (128, 160))


@dataclass
class Clip:
    """One training sequence.

    Attributes:
        images: (T, 3, S, S) float32, normalised model input.
        masks: (T, K, S, S) float32 0/1, object k's mask in every frame (all zero = absent).
    """

    images: torch.Tensor
    masks: torch.Tensor

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])


def frames_to_model(frames: np.ndarray, image_size: int, *, gamma: float = 1.0,
                    per_frame: bool = True) -> torch.Tensor:
    """(T, H, W) numeric frames -> (T, 3, S, S) normalised, each frame by its own min and max.

    Mirrors ``engine.transforms.preprocess_image`` for grey frames without an intensity range;
    ``per_frame=False`` maps the clip's min and max instead, as the plugin does with one
    intensity range (the layer's contrast limits) for every frame. ``gamma`` != 1 is an
    intensity augmentation applied after the [0, 1] mapping.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    lo = x.flatten(1).amin(1).view(-1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1)
    if not per_frame:
        lo, hi = lo.amin().expand_as(lo), hi.amax().expand_as(hi)
    x = torch.where(hi > lo, (x - lo) / (hi - lo).clamp(min=1e-12), torch.zeros_like(x))
    if gamma != 1.0:
        x = x.clamp(0, 1) ** gamma
    x = resize_to_model(x[:, None], image_size).expand(-1, 3, -1, -1)
    return normalize_imagenet(x).contiguous()


def labels_to_masks(labels: np.ndarray, obj_ids, image_size: int) -> torch.Tensor:
    """(T, H, W) int labels -> (T, K, S, S) float 0/1 masks of ``obj_ids`` (area resize, > 0.5)."""
    lab = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
    ids = torch.as_tensor(list(obj_ids), dtype=torch.int64)
    onehot = (lab[:, None] == ids.view(1, -1, 1, 1)).float()  # (T, K, H, W)
    if onehot.shape[-2:] != (image_size, image_size):
        onehot = F.interpolate(onehot, size=(image_size, image_size), mode="bilinear",
                               align_corners=False, antialias=True)
    return (onehot > 0.5).float()


def _pick_objects(labels: np.ndarray, k: int, rng: np.random.Generator,
                  min_area: int) -> list[int]:
    """Up to ``k`` object ids visible (area >= min_area) in the first frame, random order."""
    ids, counts = np.unique(labels[0], return_counts=True)
    ok = [int(i) for i, c in zip(ids, counts) if i != 0 and c >= min_area]
    rng.shuffle(ok)
    return ok[:k]


def _augment(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """Random flips (and a transpose for square frames) applied to (T, H, W) pairs."""
    if rng.random() < 0.5:
        images, labels = images[:, :, ::-1], labels[:, :, ::-1]
    if rng.random() < 0.5:
        images, labels = images[:, ::-1], labels[:, ::-1]
    return images, labels


class SyntheticClips:
    """Endless random clips from the synthetic generators.

    Args:
        image_size: model input size S.
        num_frames: frames per clip T (1 for image training).
        max_objects: objects per clip K (at most; fewer if fewer are visible in frame 0).
        volume_fraction: share of clips cut from ellipsoid volumes along z.
        cells: (min, max) number of cells (or ellipsoids) per sequence, max exclusive, at
            full difficulty.
        ramp: curriculum length as a fraction of the run: at progress 0 the clips have 1-2
            cells (a click needs no localisation yet), growing linearly to ``cells`` at
            ``ramp`` (0: always ``cells``). The trainer calls :meth:`set_progress`.
        nuclei_fraction: share of clips drawn from the textured-nuclei generators instead
            (``nuclei_clips``: many scales, fast motion and stage drift, varied looks; video
            clips are half of them cut across the ends of nuclei along z). 0 (default) draws
            exactly the clips of the first demo model's recipe.
    """

    def __init__(self, image_size: int, *, num_frames: int = 8, max_objects: int = 4,
                 volume_fraction: float = 0.2, cells: tuple[int, int] = (3, 11),
                 ramp: float = 0.0, nuclei_fraction: float = 0.0):
        if num_frames < 1 or max_objects < 1:
            raise ValueError("num_frames and max_objects must be >= 1")
        self.image_size = int(image_size)
        self.num_frames = int(num_frames)
        self.max_objects = int(max_objects)
        self.volume_fraction = float(volume_fraction)
        if not 1 <= cells[0] < cells[1]:
            raise ValueError(f"cells must be (min, max) with 1 <= min < max, got {cells}")
        self.cells = (int(cells[0]), int(cells[1]))
        self.ramp = float(ramp)
        if not 0.0 <= nuclei_fraction <= 1.0:
            raise ValueError(f"nuclei_fraction must be in [0, 1], got {nuclei_fraction}")
        self.nuclei_fraction = float(nuclei_fraction)
        self.difficulty = 1.0 if self.ramp <= 0 else 0.0

    def set_progress(self, progress: float) -> None:
        """Curriculum hook: ``progress`` in [0, 1] of the run."""
        self.difficulty = 1.0 if self.ramp <= 0 else min(1.0, max(0.0, progress / self.ramp))

    def _cell_range(self) -> tuple[int, int]:
        d = self.difficulty
        lo = int(round(1 + (self.cells[0] - 1) * d))
        hi = int(round(3 + (self.cells[1] - 3) * d))
        return lo, max(hi, lo + 1)

    def sample(self, rng: np.random.Generator) -> Clip:
        """Draw one clip (deterministic given the generator state)."""
        t = self.num_frames
        seed = int(rng.integers(0, 2**31 - 1))
        h, w = _SHAPES[int(rng.integers(len(_SHAPES)))]
        stride = 1 if t == 1 else int(rng.choice([1, 1, 2]))
        n_total = (t - 1) * stride + 1
        per_frame = True
        # drawn only when used, so that nuclei_fraction 0 leaves the random stream unchanged
        if self.nuclei_fraction > 0 and rng.random() < self.nuclei_fraction:
            if t > 1 and rng.random() < 0.5:
                images, labels = z_end_sequence(rng, self.image_size, t)
            else:
                images, labels = nuclei_sequence(rng, self.image_size, t, stride)
            h, w = images.shape[1:]
            per_frame = t == 1 or rng.random() < 0.5  # else one range, as in the plugin
        elif rng.random() < self.volume_fraction:
            depth = max(n_total, 8)
            vol, lab = make_ellipsoid_volume(shape=(depth, h, w),
                                             n_objects=int(rng.integers(*self._cell_range())),
                                             seed=seed)
            start = int(rng.integers(0, depth - n_total + 1))
            images, labels = vol[start:start + n_total:stride], lab[start:start + n_total:stride]
        else:
            n_gen = max(n_total, 2)
            images, labels = make_cell_timelapse(n_frames=n_gen, shape=(h, w),
                                                 n_cells=int(rng.integers(*self._cell_range())),
                                                 seed=seed)
            if t == 1:  # a random frame of the time-lapse
                i = int(rng.integers(n_gen))
                images, labels = images[i:i + 1], labels[i:i + 1]
            else:
                images, labels = images[:n_total:stride], labels[:n_total:stride]
        if t > 1 and rng.random() < 0.3:  # play backwards
            images, labels = images[::-1], labels[::-1]
        images, labels = _augment(images, labels, rng)
        min_area = max(16, (h * w) // 2000)
        ids = _pick_objects(labels, self.max_objects, rng, min_area)
        if not ids:  # practically never: every generator frame has cells
            return self.sample(rng)
        gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
        return Clip(images=frames_to_model(images, self.image_size, gamma=gamma,
                                           per_frame=per_frame),
                    masks=labels_to_masks(labels, ids, self.image_size))


class StackClips:
    """Clips of consecutive frames (or z-slices) cut from image + label stacks.

    Args:
        stacks: list of (images (N, H, W), labels (N, H, W) int) pairs; N may be 1 (2D).
        image_size: model input size S.
        num_frames: frames per clip (clipped to each stack's length).
        max_objects: objects per clip.
    """

    def __init__(self, stacks, image_size: int, *, num_frames: int = 8, max_objects: int = 4):
        if not stacks:
            raise ValueError("StackClips needs at least one (images, labels) stack")
        self.stacks = stacks
        self.image_size = int(image_size)
        self.num_frames = int(num_frames)
        self.max_objects = int(max_objects)

    def sample(self, rng: np.random.Generator) -> Clip:
        for _ in range(100):
            images, labels = self.stacks[int(rng.integers(len(self.stacks)))]
            n = images.shape[0]
            t = min(self.num_frames, n)
            start = int(rng.integers(0, n - t + 1))
            im, lab = images[start:start + t], labels[start:start + t]
            if t > 1 and rng.random() < 0.5:
                im, lab = im[::-1], lab[::-1]
            im, lab = _augment(im, lab, rng)
            ids = _pick_objects(lab, self.max_objects, rng, min_area=4)
            if ids:
                return Clip(images=frames_to_model(im, self.image_size),
                            masks=labels_to_masks(lab, ids, self.image_size))
        raise ValueError("no labelled object found in 100 random clips: check that the label "
                         "stacks contain objects (non-zero labels)")
