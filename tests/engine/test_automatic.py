"""Automatic segmentation of one frame (engine.automatic, engine.mask_nms), with the shipped
sam2_demo on synthetic cells."""

import numpy as np
import pytest
import torch

from napari_sam2.data.synthetic import make_cell_timelapse
from napari_sam2.engine.automatic import (
    AutomaticOptions,
    SegmentationCancelled,
    segment_everything,
)
from napari_sam2.engine.image_predictor import ImagePredictor
from napari_sam2.engine.mask_nms import crop_boxes, mask_nms, point_grid, unions_of_others
from napari_sam2.errors import InvalidOptionError
from napari_sam2.training.evaluate import jaccard

PPS = 16  # a coarse grid keeps these tests fast; the benchmark uses the defaults


@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def frame():
    images, labels = make_cell_timelapse(n_frames=1, seed=2121)
    return images[0], labels[0]


@pytest.fixture(scope="module")
def found(model, frame):
    return segment_everything(model, frame[0], points_per_side=PPS)


def _cells(truth):
    return [k for k in np.unique(truth) if k and (truth == k).sum() >= 50]


def _matched(labels, truth):
    ids = [k for k in np.unique(labels) if k]
    return [k for k in _cells(truth)
            if ids and max(jaccard(labels == i, truth == k) for i in ids) > 0.5]


def test_finds_most_cells_with_scores(found, frame):
    truth = frame[1]
    r = found
    assert r.labels.shape == truth.shape and r.labels.dtype == np.int32
    assert len(_matched(r.labels, truth)) >= len(_cells(truth)) - 1
    assert list(r.ids) == list(range(1, len(r.ids) + 1))
    assert set(np.unique(r.labels)) == {0, *r.ids.tolist()}
    assert (r.iou >= 0.6).all() and (r.stability >= 0.8).all() and (r.object_score > 0).all()
    assert np.all(np.diff(r.iou) <= 1e-6)  # painted best first
    assert [int((r.labels == k).sum()) for k in r.ids] == r.area.tolist()
    assert (r.area >= r.options.min_area).all()
    assert r.n_points == PPS * PPS and r.points_per_second > 0
    assert r.n_candidates >= len(r.ids)
    for k, (row, col) in zip(r.ids, r.points):  # each mask comes from a grid point
        assert 0 <= row < truth.shape[0] and 0 <= col < truth.shape[1]
    assert set(r.scores()) == set(r.ids.tolist())


def test_same_result_whatever_the_batch_and_for_a_predictor(model, frame, found):
    other = segment_everything(ImagePredictor(model), frame[0], points_per_side=PPS,
                               points_per_batch=7)
    assert other.n_points == found.n_points
    assert len(other.ids) == len(found.ids)
    for k in found.ids:
        assert jaccard(other.labels == k, found.labels == k) > 0.99


def test_nms_removes_duplicates():
    masks = torch.zeros(4, 20, 20, dtype=torch.bool)
    masks[0, 2:10, 2:10] = True
    masks[1, 2:10, 2:11] = True  # nearly the same as 0 (IoU 0.89)
    masks[2, 12:18, 12:18] = True
    masks[3, 2:10, 2:6] = True  # half of 0 (IoU 0.5): kept at threshold 0.5
    kept = mask_nms(masks, torch.tensor([0.8, 0.9, 0.7, 0.6]), 0.5)
    assert kept.tolist() == [1, 2, 3]
    assert mask_nms(masks, torch.tensor([0.8, 0.9, 0.7, 0.6]), 0.95).tolist() == [1, 0, 2, 3]


def test_union_of_two_touching_objects_is_dropped():
    masks = torch.zeros(4, 20, 30, dtype=torch.bool)
    masks[0, 5:15, 2:12] = True
    masks[1, 5:15, 12:22] = True
    masks[2, 5:15, 2:22] = True  # 0 and 1 together
    masks[3, 6:14, 3:11] = True  # inside 0 only
    assert unions_of_others(masks).tolist() == [False, False, True, False]


def test_no_duplicate_objects_in_the_result(found, frame):
    # each cell got several grid points, each up to three masks: NMS leaves one label a cell
    assert found.n_candidates >= 2 * len(found.ids)
    for k in _cells(frame[1]):
        cell = frame[1] == k
        parts = [i for i in found.ids
                 if (found.labels == i)[cell].sum() >= 0.2 * cell.sum()]
        assert len(parts) <= 1, (k, parts)


def test_region_restricts_points_and_labels(model, frame):
    region = np.zeros(frame[0].shape, bool)
    region[:, : frame[0].shape[1] // 2] = True
    r = segment_everything(model, frame[0], points_per_side=PPS, region=region)
    assert r.n_points == PPS * PPS // 2
    assert not r.labels[~region].any() and r.labels.any()
    assert (r.points[:, 1] < frame[0].shape[1] / 2).all()


def test_occupied_pixels_and_first_id(model, frame, found):
    occupied = found.labels == found.ids[0]
    r = segment_everything(model, frame[0], points_per_side=PPS, occupied=occupied,
                           first_id=100)
    assert not r.labels[occupied].any()
    assert r.ids.min() == 100


def test_thresholds_filter(model, frame, found):
    none = segment_everything(model, frame[0], points_per_side=PPS, iou_threshold=1.0)
    assert not none.labels.any() and len(none.ids) == 0 and none.n_candidates == 0
    strict = segment_everything(model, frame[0], points_per_side=PPS, stability_threshold=0.97,
                                object_score_threshold=5.0)
    assert strict.n_candidates < found.n_candidates
    assert (strict.stability >= 0.97).all() and (strict.object_score > 5.0).all()


def test_progress_and_cancel(model, frame):
    seen = []
    r = segment_everything(model, frame[0], points_per_side=8, points_per_batch=16,
                           progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 64) and seen[-1] == (64, 64) and len(seen) == 5
    assert r.n_points == 64
    with pytest.raises(SegmentationCancelled, match="16 of 64"):
        segment_everything(model, frame[0], points_per_side=8, points_per_batch=16,
                           cancel=lambda: len(seen) > 6, progress=lambda d, t: seen.append(d))


def test_crop_layers(model, frame):
    r = segment_everything(model, frame[0], points_per_side=8, crop_layers=1)
    assert r.n_points == 5 * 64
    assert r.labels.any()
    assert len(_matched(r.labels, frame[1])) >= len(_cells(frame[1])) // 2


def test_grid_and_crops_geometry():
    pts = point_grid(4, (40, 80))
    assert pts.shape == (16, 2)
    assert np.allclose(pts[0], (4.5, 9.5)) and np.allclose(pts[-1], (34.5, 69.5))
    crops = crop_boxes((100, 130), 2, 0.25)
    assert len(crops) == 1 + 4 + 16 and crops[0] == (0, 0, 0, 100, 130)
    for layer, r0, c0, r1, c1 in crops:
        assert 0 <= r0 < r1 <= 100 and 0 <= c0 < c1 <= 130
    for layer in (1, 2):  # each layer covers the whole frame
        cover = np.zeros((100, 130), bool)
        for lay, r0, c0, r1, c1 in crops:
            if lay == layer:
                cover[r0:r1, c0:c1] = True
        assert cover.all()


@pytest.mark.parametrize("bad, name", [
    ({"points_per_side": 0}, "points_per_side"),
    ({"points_per_side": 2.5}, "points_per_side"),
    ({"iou_threshold": 1.5}, "iou_threshold"),
    ({"stability_threshold": -0.1}, "stability_threshold"),
    ({"nms_threshold": 0.0}, "nms_threshold"),
    ({"crop_layers": -1}, "crop_layers"),
    ({"min_area": -3}, "min_area"),
    ({"object_score_threshold": float("nan")}, "object_score_threshold"),
    ({"drop_unions": "yes"}, "drop_unions"),
])
def test_bad_options_say_which(bad, name):
    with pytest.raises(InvalidOptionError, match=name):
        AutomaticOptions(**bad)


def test_bad_inputs_are_clear(model, frame):
    with pytest.raises(ValueError, match="region must be a .H, W. mask"):
        segment_everything(model, frame[0], region=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="first_id"):
        segment_everything(model, frame[0], first_id=0)
    with pytest.raises(TypeError, match="Sam2Model or an ImagePredictor"):
        segment_everything("sam2_demo", frame[0])
    with pytest.raises(TypeError, match="unexpected keyword"):
        segment_everything(model, frame[0], points_per_sid=4)
