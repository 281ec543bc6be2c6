"""The synthetic generators: contract shapes and dtypes, determinism, the promised events."""

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.data import make_cell_timelapse, make_ellipsoid_volume


def test_timelapse_contract_and_determinism():
    images, labels = make_cell_timelapse()
    assert images.shape == labels.shape == (16, 192, 256)
    assert images.dtype == np.uint16 and labels.dtype == np.int32
    assert images.max() > 255  # really 16-bit, not 8-bit in a 16-bit container
    again_i, again_l = make_cell_timelapse()
    assert np.array_equal(images, again_i) and np.array_equal(labels, again_l)
    other_i, _ = make_cell_timelapse(seed=1)
    assert not np.array_equal(images, other_i)
    assert set(np.unique(labels)) == set(range(7))


def test_timelapse_noise_blur_and_contrast():
    images, labels = make_cell_timelapse(seed=3)
    img = images[0].astype(float)
    fg, bg = img[labels[0] > 0], img[labels[0] == 0]
    assert fg.mean() > bg.mean() + 500
    assert bg.std() > 10  # noisy background
    # blurred: a label edge is not a step edge in the image
    edge = ndimage.binary_dilation(labels[0] > 0) & ~(labels[0] > 0)
    assert bg.mean() < img[edge].mean() < fg.mean()


def test_timelapse_cells_move_deform_touch_and_one_leaves_and_returns():
    images, labels = make_cell_timelapse(seed=0)
    areas = np.array([[(labels[t] == k).sum() for k in range(1, 7)] for t in range(16)])
    leaver = areas[:, 5]
    assert leaver[0] > 0 and leaver[-1] > 0 and (leaver == 0).any()
    assert (areas[:, :5] > 0).all()
    # cells 1 and 2 touch in the first frame
    assert ((labels[0] == 2) & ndimage.binary_dilation(labels[0] == 1)).any()
    for k in range(1, 6):
        c0 = np.argwhere(labels[0] == k).mean(0)
        c1 = np.argwhere(labels[-1] == k).mean(0)
        assert np.linalg.norm(c1 - c0) > 1.0 or k == 2  # moved (2 follows 1)
    # deforming: the shape changes beyond a pure translation
    m0, m1 = labels[0] == 3, labels[8] == 3
    assert abs(int(m0.sum()) - int(m1.sum())) > 5 or (m0 != m1).sum() > 50


@pytest.mark.parametrize("kwargs", [dict(n_frames=1, n_cells=1), dict(shape=(64, 80), n_cells=3)])
def test_timelapse_small_inputs(kwargs):
    images, labels = make_cell_timelapse(**kwargs)
    assert images.shape == labels.shape
    assert labels.max() == kwargs["n_cells"]


def test_volume_contract():
    vol, labels = make_ellipsoid_volume()
    assert vol.shape == labels.shape == (32, 160, 160)
    assert vol.dtype == np.uint16 and labels.dtype == np.int32
    assert set(np.unique(labels)) == set(range(7))
    assert np.array_equal(vol, make_ellipsoid_volume()[0])
    # objects span several slices (sliced along z like a 3D stack)
    for k in range(1, 7):
        zs = np.unique(np.nonzero(labels == k)[0])
        assert len(zs) >= 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        make_cell_timelapse(n_frames=0)
    with pytest.raises(ValueError, match="shape"):
        make_cell_timelapse(shape=(10, 10))
    with pytest.raises(ValueError, match="n_objects"):
        make_ellipsoid_volume(n_objects=0)

