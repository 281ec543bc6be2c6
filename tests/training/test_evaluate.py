"""The quality measurements of training/evaluate.py: overlap scores and the bootstrap interval."""

import numpy as np
import pytest

from napari_sam2.training.evaluate import bootstrap_ci, boundary_f, jaccard, touches_another


def test_jaccard_and_boundary_f_on_known_masks():
    a = np.zeros((20, 20), bool)
    a[5:15, 5:15] = True
    b = np.zeros_like(a)
    b[5:15, 10:20] = True
    assert jaccard(a, a) == 1.0
    assert jaccard(a, b) == pytest.approx(50 / 150)
    assert jaccard(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert boundary_f(a, a) == 1.0
    assert boundary_f(a, np.zeros_like(a)) == 0.0
    assert 0.0 < boundary_f(a, b) < 1.0


def test_touches_another_sees_a_neighbour_within_the_gap():
    labels = np.zeros((20, 30), np.int32)
    labels[5:15, 2:10] = 1
    labels[5:15, 11:18] = 2  # one pixel from cell 1
    labels[5:15, 24:28] = 3  # six pixels from cell 2
    assert touches_another(labels, 1) and touches_another(labels, 2)
    assert not touches_another(labels, 3)


def test_bootstrap_interval_brackets_the_pooled_mean_and_narrows_with_more_groups():
    rng = np.random.default_rng(1)
    means = rng.uniform(0.7, 1.0, size=8)
    counts = rng.integers(3, 12, size=8)
    pooled = float((means * counts).sum() / counts.sum())
    low, high = bootstrap_ci(means, counts)
    assert means.min() <= low < pooled < high <= means.max()
    # the same spread over four times as many groups: about half as wide
    low4, high4 = bootstrap_ci(np.tile(means, 4), np.tile(counts, 4))
    assert (high4 - low4) < 0.7 * (high - low)
    # deterministic for a seed, and equal groups give a zero-width interval
    assert bootstrap_ci(means, counts) == (low, high)
    assert bootstrap_ci([0.9, 0.9, 0.9], [2, 5, 1]) == pytest.approx((0.9, 0.9))


def test_bootstrap_interval_needs_two_groups_and_matching_counts():
    assert all(np.isnan(bootstrap_ci([0.9], [4])))
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci([0.9, 0.8], [4])
