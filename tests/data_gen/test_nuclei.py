"""data/nuclei.py: textured nuclei under drift, and z-stacks whose nuclei start and end."""

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.data.nuclei import Look, make_nuclei_timelapse, make_nuclei_volume, random_look


def _centre(labels: np.ndarray, k: int) -> np.ndarray:
    return np.array(ndimage.center_of_mass(labels == k))


def test_timelapse_is_deterministic_and_nuclei_are_bright_separate_labels():
    images, labels = make_nuclei_timelapse(n_frames=4, shape=(96, 128), n_cells=5, seed=3)
    again = make_nuclei_timelapse(n_frames=4, shape=(96, 128), n_cells=5, seed=3)
    assert images.dtype == np.uint16 and labels.dtype == np.int32
    assert images.shape == labels.shape == (4, 96, 128)
    assert np.array_equal(images, again[0]) and np.array_equal(labels, again[1])
    assert not np.array_equal(images, make_nuclei_timelapse(
        n_frames=4, shape=(96, 128), n_cells=5, seed=4)[0])
    ids = [k for k in np.unique(labels[0]) if k]
    assert len(ids) >= 5
    img = images[0].astype(float)
    assert img[labels[0] > 0].mean() > img[labels[0] == 0].mean() + 200


def test_stage_drift_moves_every_nucleus_by_the_drift():
    """With no motion of their own, nuclei move exactly with the stage (centres measured on
    nuclei that stay whole in the frame)."""
    _, labels = make_nuclei_timelapse(n_frames=6, shape=(160, 160), n_cells=6,
                                      diameter=(16, 20), speed=(0.0, 0.0),
                                      drift=(-3.0, 4.0), seed=1)
    moved = []
    for k in np.unique(labels[0]):
        whole = [(labels[t] == k).sum() for t in (0, 5)]
        inside = all(not (labels[t] == k)[[0, -1]].any() and not (labels[t] == k)[:, [0, -1]].any()
                     for t in (0, 5))
        if k and inside and min(whole) > 100:
            moved.append(_centre(labels[5], k) - _centre(labels[0], k))
    assert len(moved) >= 2
    # the scene moves by +drift in world terms, so nuclei move by -drift in the frame
    assert np.allclose(np.median(moved, axis=0), (15.0, -20.0), atol=1.5)


def test_dense_small_nuclei_touch_and_have_the_asked_size():
    _, labels = make_nuclei_timelapse(n_frames=1, shape=(256, 256), n_cells=60,
                                      diameter=(14, 18), spacing=0.9, seed=2)
    ids, areas = np.unique(labels[0], return_counts=True)
    areas = areas[ids > 0]
    assert len(areas) >= 50
    across = 2 * np.sqrt(np.median(areas) / np.pi)
    assert 12 < across < 20
    touching = ndimage.binary_dilation(labels[0] > 0) & (labels[0] > 0)
    grown = ndimage.grey_dilation(labels[0], size=3)
    assert ((grown != labels[0]) & (labels[0] > 0) & touching).any()  # neighbours meet


def test_volume_nuclei_start_and_end_inside_the_stack():
    volume, labels = make_nuclei_volume(shape=(40, 96, 96), n_objects=4, extent=(0.2, 0.4), diameter=(20, 30),
                                        seed=5)
    assert volume.shape == labels.shape == (40, 96, 96) and volume.dtype == np.uint16
    spans = []
    for k in range(1, 5):
        present = np.nonzero((labels == k).any((1, 2)))[0]
        assert len(present) > 0
        assert np.array_equal(present, np.arange(present[0], present[-1] + 1))  # one piece
        spans.append((present[0], present[-1]))
        assert present[-1] - present[0] + 1 <= 0.45 * 40 + 2
    assert any(lo > 0 for lo, _ in spans) and any(hi < 39 for _, hi in spans)
    # beyond its end a nucleus leaves only glow: dimmer than inside, but above the background
    lo, hi = spans[0]
    z_out = hi + 3 if hi + 3 < 40 else lo - 3
    footprint = (labels == 1).any(0)
    inside = volume[(lo + hi) // 2][footprint].mean()
    assert volume[z_out][footprint & ~(labels[z_out] > 0)].mean() < inside


def test_random_look_and_bad_arguments():
    rng = np.random.default_rng(0)
    looks = [random_look(rng) for _ in range(50)]
    assert min(lk.gain for lk in looks) < 0.3 and max(lk.gain for lk in looks) > 1.5
    assert all(0.6 <= lk.blur <= 2.2 and 0 <= lk.texture <= 0.6 for lk in looks)
    smooth = make_nuclei_timelapse(n_frames=1, shape=(64, 64), n_cells=2, seed=0,
                                   look=Look(texture=0.0))
    assert smooth[0].shape == (1, 64, 64)
    with pytest.raises(ValueError, match="shape"):
        make_nuclei_timelapse(shape=(16, 64))
    with pytest.raises(ValueError, match="n_objects"):
        make_nuclei_volume(shape=(16, 64, 64), n_objects=0)


def test_stacked_volume_puts_nuclei_above_each_other():
    """Packed in 3D, some nucleus covers pixels (in the plane) that another one covers on
    other slices: where one ends, the next begins at the same place."""
    _, labels = make_nuclei_volume(shape=(40, 96, 96), n_objects=14, diameter=(20, 30),
                                   extent=(0.15, 0.3), stacked=True, seed=3)
    footprints = [(labels == k).any(0) for k in range(1, labels.max() + 1)]
    overlapping = sum((a & b).any() for i, a in enumerate(footprints)
                      for b in footprints[i + 1:])
    assert labels.max() >= 8 and overlapping >= 2
    _, side_by_side = make_nuclei_volume(shape=(40, 96, 96), n_objects=4, diameter=(20, 30),
                                         seed=3)
    flat = [(side_by_side == k).any(0) for k in range(1, side_by_side.max() + 1)]
    assert not any((a & b).any() for i, a in enumerate(flat) for b in flat[i + 1:])
