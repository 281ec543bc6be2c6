"""The synthetic dividing cells (data/dividing.py): determinism and the promised events."""

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.data.dividing import PINCH_FRAMES, make_dividing_timelapse


@pytest.fixture(scope="module")
def seq():
    return make_dividing_timelapse(seed=3)


def test_contract_and_determinism(seq):
    images, labels, tracks = seq
    assert images.shape == labels.shape == (32, 192, 256)
    assert images.dtype == np.uint16 and labels.dtype == np.int32 and tracks.shape[1] == 4
    again = make_dividing_timelapse(seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(seq, again))
    assert not np.array_equal(images, make_dividing_timelapse(seed=4)[0])
    with pytest.raises(ValueError, match="n_frames"):
        make_dividing_timelapse(n_frames=5)
    with pytest.raises(ValueError, match="n_dividing"):
        make_dividing_timelapse(n_cells=2, n_dividing=3)


def test_tracks_follow_the_labels_and_ctc_rules(seq):
    _, labels, tracks = seq
    assert len(tracks) == 4 + 2 * 3  # 4 cells, 3 divide (default n_cells // 2 + 1)
    for L, B, E, P in tracks:
        present = [t for t in range(labels.shape[0]) if (labels[t] == L).any()]
        assert present == list(range(B, E + 1)), L
        if P:
            parent = tracks[tracks[:, 0] == P][0]
            assert parent[2] == B - 1  # the mother ends on the frame before
            assert parent[3] == 0
    assert set(np.unique(labels)) == set(range(len(tracks) + 1))


def test_mother_elongates_and_daughters_are_apart(seq):
    _, labels, tracks = seq
    for L, B, E, P in tracks:
        if not P or L != tracks[tracks[:, 3] == P][0, 0]:
            continue  # once per division
        sister = tracks[(tracks[:, 3] == P) & (tracks[:, 0] != L)][0, 0]
        mother_early = labels[B - PINCH_FRAMES - 1] == P
        mother_last = labels[B - 1] == P

        def elongation(m):
            ys, xs = np.nonzero(m)
            ev = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
            return ev[1] / ev[0]

        assert elongation(mother_last) > 2.0 > 1.5 > elongation(mother_early)
        assert ndimage.label(mother_last)[1] == 1  # still one cell, pinched
        a, b = labels[B] == L, labels[B] == sister
        gap = ndimage.distance_transform_edt(~a)[b].min()
        assert gap >= 2  # apart on the division frame
        assert 0.4 < a.sum() / mother_early.sum() < 0.8
