"""The shipped sam2_demo model on held-out synthetic sequences (issue 5 quality figures).

Measured through the engine (ImagePredictor, TrackingSession). Click and box use the same
held-out set as benchmarks/bench_quality.py (32 sequences x 2 frames, about 380 objects), so the
assertions are the issue's figures as the benchmark reports them; propagation, which costs more,
runs on the first 2 of the benchmark's 16 sequences.
"""

import numpy as np
import pytest

from napari_sam2.model import load_model
from napari_sam2.model.loading import shipped_weights_path
from napari_sam2.training.evaluate import IMAGE_SEQUENCES, click_and_box_iou, propagation_jf

pytestmark = pytest.mark.skipif(not shipped_weights_path("sam2_demo").is_file(),
                                reason="sam2_demo weights are not in this checkout")

# With 2 threads the shipped weights measure click 0.897 and box 0.909 here (95 % interval over
# sequences: box 0.889-0.927), and on the 2 propagation sequences J&F 0.883 with the leaving
# cell found again in both (the benchmark's 16 sequences: J&F 0.906, found again in 15).


@pytest.fixture(scope="module")
def model():
    return load_model("sam2_demo", device="cpu")


@pytest.fixture(scope="module")
def image_scores(model):
    return click_and_box_iou(model, n_sequences=IMAGE_SEQUENCES, frames=(0, 8))


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
