"""The shipped sam2_demo model on held-out synthetic sequences (issue 5 quality figures).

Measured through the engine (ImagePredictor, TrackingSession) on fewer sequences than
benchmarks/bench_quality.py, so that it runs in seconds. Figures the shipped model does not
reach are strict xfails whose reason gives the measured value (see docs/training.md).
"""

import numpy as np
import pytest

from napari_sam2.model import load_model
from napari_sam2.model.loading import shipped_weights_path
from napari_sam2.training.evaluate import click_and_box_iou, propagation_jf

pytestmark = pytest.mark.skipif(not shipped_weights_path("sam2_demo").is_file(),
                                reason="sam2_demo weights are not in this checkout")

# Figures the shipped weights do not reach are strict xfails quoting the value measured by
# benchmarks/bench_quality.py (4 / 2 held-out sequences) when the weights were committed.
# Here (2 images, 1 sequence) the weights measured click 0.855, box 0.884, J&F 0.818.
NOT_YET = "shipped sam2_demo below target: measured {}"


@pytest.fixture(scope="module")
def model():
    return load_model("sam2_demo", device="cpu")


@pytest.fixture(scope="module")
def image_scores(model):
    return click_and_box_iou(model, n_sequences=2, frames=(0,))


@pytest.fixture(scope="module")
def video_quality(model):
    return propagation_jf(model, n_sequences=1, n_frames=16)


def test_one_click_gives_the_cell(image_scores):
    click, _ = image_scores
    assert 0.0 <= click <= 1.0
    assert click >= 0.85


@pytest.mark.xfail(strict=True, reason=NOT_YET.format("box IoU 0.866 < 0.9"))
def test_box_gives_the_cell(image_scores):
    _, box = image_scores
    assert box >= 0.9


def test_click_on_frame_0_propagates_over_16_frames(video_quality):
    assert np.isfinite(video_quality.jf)
    assert video_quality.jf >= 0.8


def test_cell_that_leaves_is_found_again(video_quality):
    assert video_quality.reappear_found == 1.0
    assert video_quality.absent_correct >= 0.5
