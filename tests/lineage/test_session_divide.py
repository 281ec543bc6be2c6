"""Divisions in a TrackingSession with the shipped sam2_demo model on synthetic dividing
cells: by hand (session.divide) and found while propagating (propagate(divisions=...))."""

import numpy as np
import pytest
from scipy import ndimage

from napari_sam2.data.dividing import make_dividing_timelapse
from napari_sam2.engine.division import DivisionRule, find_split
from napari_sam2.engine.lineage import TrackSegment
from napari_sam2.engine.session import TrackingSession
from napari_sam2.io.ctc import ctc_scores, ctc_valid, write_ctc, write_ctc_ground_truth


@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def seq():
    """seed 0: cells 1, 2, 4 divide on frames 13, 17, 18 (daughters 5/6, 7/8, 9/10)."""
    return make_dividing_timelapse(seed=0)


@pytest.fixture(scope="module")
def cache(model, seq):
    s = TrackingSession(model, seq[0])
    for f in range(s.num_frames):
        s.encode_frame(f)
    return s.feature_cache


def _click(session, labels, ids):
    for k in ids:
        dist = ndimage.distance_transform_edt(labels[0] == k)
        session.add_points(0, int(k), [np.unravel_index(dist.argmax(), dist.shape)], [1])


def _run(session, **kwargs) -> np.ndarray:
    """Propagate; (T, H, W) labels of the last result of each frame."""
    out = np.zeros((session.num_frames, *session.frame_shape), np.int32)
    for r in session.propagate(0, **kwargs):
        frame = np.zeros(session.frame_shape, np.int32)
        for k, oid in enumerate(r.obj_ids):
            frame[r.masks[k] & (frame == 0)] = oid
        out[r.frame] = frame
    return out


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_divide_by_hand(model, seq, cache):
    images, labels, tracks = seq
    s = TrackingSession(model, images, feature_cache=cache)
    _click(s, labels, [1, 3])
    assert s.lineage.tracks[1] == TrackSegment(1, 0, None, None)
    _run(s, max_frames=15)
    before = s.frames_with_output(1)
    assert 13 in before and 15 in before
    result = s.divide(13, 1, {5: labels[13] == 5, 6: labels[13] == 6})
    assert result.obj_ids == [3, 5, 6]  # the parent is gone from the division frame on
    assert s.frames_with_output(1) == list(range(13))
    assert s.lineage.tracks[1].end == 12 and s.lineage.children(1) == [5, 6]
    assert s.lineage.tracks[5] == TrackSegment(5, 13, None, 1)
    out = _run(s)
    assert not (out[13:] == 1).any()
    assert not (out[:13] == 5).any() and not (out[:13] == 6).any()
    for d in (5, 6):  # each daughter followed to the end
        assert min(_iou(out[t] == d, labels[t] == d) for t in range(13, 32)) > 0.6
    with pytest.raises(ValueError, match="outside"):  # no prompt for the parent after its end
        s.add_points(20, 1, [[10, 10]], [1])
    with pytest.raises(ValueError, match="outside"):  # nor a daughter before its start
        s.add_points(5, 5, [[10, 10]], [1])
    s.remove_object(5)
    s.remove_object(6)  # removing both daughters undoes the division
    assert s.lineage.tracks[1].end is None and s.lineage.allows(1, 20)


def test_divide_refusals_change_nothing(model, seq, cache):
    images, labels, _ = seq
    s = TrackingSession(model, images, feature_cache=cache)
    _click(s, labels, [1, 3])
    lin = s.lineage.copy()
    good = labels[13] == 5
    for args, match in [((13, 1, {3: good}), "already an object"),
                        ((13, 1, {5: np.zeros_like(good)}), "empty"),
                        ((13, 1, {5: good[:5]}), "shape"),
                        ((0, 1, {5: good}), "no prompt before"),
                        ((13, 9, {5: good}), "unknown object")]:
        with pytest.raises(ValueError, match=match):
            s.divide(*args)
        assert s.obj_ids == [1, 3] and s.lineage == lin
    s.remove_object(3)
    assert 3 not in s.lineage
    s.reset()
    assert len(s.lineage) == 0


def test_find_split_rule():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True
    rule = DivisionRule()
    assert find_split(mask, 100, rule) is None  # one piece
    mask[5:15, 18:28] = True
    a, b = find_split(mask, 200, rule)
    assert a.sum() == b.sum() == 100 and not (a & b).any()
    assert find_split(mask, 600, rule) is None  # parts too small for the cell before
    mask[30, 30] = True  # a stray pixel joins the nearer part
    a, b = find_split(mask, 200, rule)
    assert a.sum() + b.sum() == mask.sum()
    assert find_split(mask, 200, DivisionRule(min_gap=5)) is None  # 3 pixels apart
    neighbour = np.zeros_like(mask)
    neighbour[5:15, 17:30] = True  # the second part lies on another object's mask
    assert find_split(mask, 200, rule, others=neighbour) is None
    assert find_split(mask, 200, rule, others=np.zeros_like(mask)) is not None
    with pytest.raises(ValueError, match="min_fraction"):
        DivisionRule(min_fraction=0.6)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="first_id"):
            DivisionRule(first_id=bad)


@pytest.mark.parametrize("first_id, daughters", [(1, [2, 3]), (10, [10, 11])])
def test_a_division_found_automatically(model, first_id, daughters):
    """Fast variant: one cell that divides on a small frame is split into two new objects,
    with the next ids at or above ``first_id`` (labels painted by hand keep theirs)."""
    images, labels, tracks = make_dividing_timelapse(n_frames=16, shape=(96, 96), n_cells=1,
                                                     seed=1)
    frame = int(tracks[tracks[:, 3] > 0][0, 1])
    s = TrackingSession(model, images)
    _click(s, labels, [1])
    out = _run(s, divisions=DivisionRule(first_id=first_id))
    (parent, found, kids), = s.lineage.divisions()
    assert parent == 1 and abs(found - frame) <= 1 and kids == daughters
    assert not (out[found:] == 1).any() and s.lineage.tracks[1].end == found - 1
    last = [labels[-1] == k for k in (2, 3)]
    assert sorted(max(_iou(out[-1] == k, g) for k in kids) for g in last)[0] > 0.5


@pytest.mark.slow
def test_divisions_found_automatically(model, seq, cache, tmp_path):
    """One click per cell on frame 0, nothing else: every division is found within a frame,
    and the CTC export scores TRA >= 0.9 against the ground truth (without division handling
    the daughters are missed)."""
    images, labels, tracks = seq
    s = TrackingSession(model, images, feature_cache=cache)
    _click(s, labels, [1, 2, 3, 4])
    out = _run(s, divisions=DivisionRule())
    divisions = s.lineage.divisions()
    truth = {(int(P), int(B)) for _, B, _, P in tracks if P}
    assert len(divisions) == len(truth) == 3
    for parent, frame, kids in divisions:
        t = next(f for p, f in truth if p == parent)
        assert abs(frame - t) <= 1 and len(kids) == 2
        gt_kids = [int(L) for L, _, _, P in tracks if P == parent]
        f = max(frame, t) + 2
        best = sorted(max(_iou(out[f] == k, labels[f] == g) for k in kids) for g in gt_kids)
        assert best[0] > 0.5  # each ground-truth daughter has its own object
    gt = write_ctc_ground_truth(tmp_path / "gt", labels, tracks)
    res = write_ctc(tmp_path / "res", out, s.lineage.parents())
    assert ctc_valid(res)
    with_div = ctc_scores(res, gt)
    assert with_div["TRA"] >= 0.9 and with_div["BC(1)"] == 1.0

    plain = TrackingSession(model, images, feature_cache=cache)
    _click(plain, labels, [1, 2, 3, 4])
    res = write_ctc(tmp_path / "plain", _run(plain), {})
    without = ctc_scores(res, gt)
    assert without["TRA"] < with_div["TRA"] and without["BC(1)"] == 0
