"""The shipped sam2_demo model on held-out synthetic sequences (issue 5 quality figures).

Measured through the engine (ImagePredictor, TrackingSession). Click and box use the same
held-out set as benchmarks/bench_quality.py (32 sequences x 2 frames, about 380 objects), so the
assertions are the issue's figures as the benchmark reports them; propagation, which costs more,
runs on the first 2 of the benchmark's 16 sequences.
"""

import numpy as np
import pytest

from napari_sam2.model import load_model
from napari_sam2.training.evaluate import IMAGE_SEQUENCES, click_and_box_iou, propagation_jf
from napari_sam2.training.evaluate_cases import drift_jf, small_click_iou, zstack_quality

# The weights ship in the package: a checkout without them fails here (it never skips).

# With 2 threads the shipped weights (v4, 2026-12-06) measure click 0.891 and box 0.908 here
# (95 % interval over sequences: box 0.889-0.925), and on the benchmark's 16 propagation
# sequences J&F 0.906 with the leaving cell found again in 15 (the v3 weights: 0.897, 0.909,
# 0.906, 15).


@pytest.fixture(scope="module")
def model():
    return load_model("sam2_demo", device="cpu")


@pytest.fixture(scope="module")
def image_details(model):
    """One dict per object (click and box IoU of that object), and the two means."""
    details = []
    means = click_and_box_iou(model, n_sequences=IMAGE_SEQUENCES, frames=(0, 8), details=details)
    return details, means


@pytest.fixture(scope="module")
def image_scores(image_details):
    return image_details[1]


@pytest.fixture(scope="module")
def video_quality(model):
    return propagation_jf(model, n_sequences=2, n_frames=16)


def test_one_click_gives_the_cell(image_scores):
    click, _ = image_scores
    assert 0.0 <= click <= 1.0
    assert click >= 0.85


def test_box_gives_the_cell(image_scores):
    _, box = image_scores
    assert box >= 0.9


def test_click_on_frame_0_propagates_over_16_frames(video_quality):
    assert np.isfinite(video_quality.jf)
    assert video_quality.jf >= 0.8


def test_cell_that_leaves_is_found_again(video_quality):
    assert video_quality.reappear_count == 2
    assert video_quality.reappear_found == 1.0
    assert video_quality.absent_correct >= 0.5


def test_no_object_is_lost_behind_a_good_mean(image_details):
    """Per object, not only on average: a mean of 0.9 could hide cells given half a mask.
    (Shipped weights, 2 threads: IoU below 0.5 for 2.3 % of the clicks and 2.9 % of the boxes
    of 384 objects; the 5th percentile is 0.68 and 0.71.)"""
    details, _ = image_details
    assert len(details) > 300
    for kind in ("click", "box"):
        ious = np.array([d[f"{kind}_iou"] for d in details])
        assert (ious < 0.5).mean() <= 0.05, kind
        assert np.percentile(ious, 5) >= 0.5, kind


# The held-out cases of issue 22 (training/evaluate_cases.py), on the first 2 volumes /
# sequences / images of each set. With 2 threads the shipped weights measure here: z empty
# outside 0.948 (831 slices), 3D IoU 0.755 (24 nuclei), drift J&F 0.847, small click 0.849 (80
# nuclei); the benchmark's 12 of each: 0.963, 0.757, 0.842, 0.835 against the bars of
# 0.95, 0.75, 0.8, 0.75 (docs/training.md, "The fourth phase"). The v3 weights measure 0.746,
# 0.478, 0.539 and 0.744 there. The z bars below sit a little under the 2-volume figures, which
# move more with the volumes drawn than the 12-volume ones; drift and small use the bars.
Z_EMPTY_BAR, Z_IOU_BAR, DRIFT_BAR, SMALL_BAR = 0.93, 0.72, 0.8, 0.75


@pytest.fixture(scope="module")
def z_cases(model):
    return zstack_quality(model, n_volumes=2)


def test_nuclei_end_along_z(z_cases):
    empty, iou = z_cases
    assert empty.extra["slices"] > 200 and iou.extra["objects"] >= 20
    assert empty.value >= Z_EMPTY_BAR
    assert iou.value >= Z_IOU_BAR


def test_nuclei_are_tracked_under_stage_drift(model):
    result = drift_jf(model, n_sequences=2)
    assert result.extra["object-frames"] > 200
    assert result.value >= DRIFT_BAR


def test_small_nuclei_are_found_by_one_click(model):
    result = small_click_iou(model, n_images=2)
    assert result.extra["objects"] >= 60 and result.extra["empty masks"] == 0
    assert result.value >= SMALL_BAR
