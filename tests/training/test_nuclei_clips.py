"""Training clips from the nuclei generators (issue 22): what they cover, and that the first
demo model's data stay what they were."""

import numpy as np
import torch

from napari_sam2.training.datasets import SyntheticClips
from napari_sam2.training.nuclei_clips import nuclei_sequence, z_end_sequence


def test_nuclei_fraction_zero_draws_the_old_clips():
    old = SyntheticClips(64, num_frames=3, max_objects=2)
    new = SyntheticClips(64, num_frames=3, max_objects=2, nuclei_fraction=0.0)
    a, b = old.sample(np.random.default_rng(4)), new.sample(np.random.default_rng(4))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)


def test_z_end_clips_start_inside_a_nucleus_that_ends_in_the_clip():
    rng = np.random.default_rng(0)
    ending = 0
    for _ in range(8):
        images, labels = z_end_sequence(rng, 256, 8)
        assert images.shape == labels.shape and images.shape[0] == 8
        first = [k for k in np.unique(labels[0]) if k]
        assert first  # something to prompt on the first slice
        ending += any(not (labels[-1] == k).any() for k in first)
    assert ending >= 6  # nearly every clip shows an object ending for good


def test_nuclei_sequences_cover_small_to_large_objects_and_motion():
    rng = np.random.default_rng(1)
    across = []
    for _ in range(12):
        images, labels = nuclei_sequence(rng, 256, 1, 1)
        ids, areas = np.unique(labels[0], return_counts=True)
        scale = 256 / max(labels.shape[1:])
        across.append(2 * np.sqrt(np.median(areas[ids > 0]) / np.pi) * scale)
    assert min(across) < 20 and max(across) > 45  # on the model's 256 px input
    images, labels = nuclei_sequence(np.random.default_rng(2), 256, 8, 2)
    assert images.shape[0] == 8 and labels.shape == images.shape


def test_mixed_source_gives_model_ready_clips_with_absent_objects():
    source = SyntheticClips(64, num_frames=4, max_objects=3, nuclei_fraction=1.0)
    rng = np.random.default_rng(3)
    absent = 0
    for _ in range(6):
        clip = source.sample(rng)
        assert clip.images.shape[1:] == (3, 64, 64) and clip.masks.shape[0] == 4
        assert bool((clip.masks[0].flatten(1).sum(1) > 0).all())  # present where prompted
        absent += int((clip.masks.flatten(2).sum(2) == 0).sum())
    assert absent > 0
