"""Divisions in a session record: a division marked by hand (``DivideStep``) and a propagation
that finds divisions (``PropagateStep.divisions``) survive JSON and replay to the same session
(lineage, objects, every frame's masks) on the shipped sam2_demo."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from napari_sam2.data.dividing import make_dividing_timelapse
from napari_sam2.engine.division import DivisionRule
from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.session_record import (
    DivideStep,
    PointsStep,
    PropagateStep,
    PropagationWrites,
    SessionRecord,
)
from napari_sam2.errors import DamagedFileError

SPLIT = 8  # the division frame of make_dividing_timelapse(n_cells=1, seed=0, n_frames=16)


@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def movie():
    images, truth, rows = make_dividing_timelapse(n_frames=16, shape=(64, 96), n_cells=1,
                                                  n_dividing=1, seed=0)
    assert rows.tolist() == [[1, 0, 7, 0], [2, 8, 15, 1], [3, 8, 15, 1]]
    return images, truth


def _centre(mask):
    rows, cols = np.nonzero(mask)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return float(rows[i]), float(cols[i])


def _session(model, images):
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    return TrackingSession(model, images, axis=0, intensity_range=(lo, hi))


def _record(steps, images):
    return SessionRecord(steps=steps, model="sam2_demo", image_shape=images.shape,
                         stack_axis=0)


def _state(session):
    """Objects, lineage and every frame's masks of ``session``."""
    masks = {}
    for t in range(session.num_frames):
        result = session.result(t)
        masks[t] = {o: result.mask_of(o) for o in result.obj_ids}
    return session.obj_ids, session.lineage.to_dict(), masks


def _assert_same(a, b):
    (ids_a, lin_a, masks_a), (ids_b, lin_b, masks_b) = a, b
    assert ids_a == ids_b and lin_a == lin_b
    for t in masks_a:
        assert masks_a[t].keys() == masks_b[t].keys(), t
        for o in masks_a[t]:
            np.testing.assert_array_equal(masks_a[t][o], masks_b[t][o])


def test_json_round_trip_of_division_steps():
    rng = np.random.default_rng(3)
    a, b = rng.random((7, 5)) > 0.5, rng.random((7, 5)) > 0.3
    rule = DivisionRule(confirm_frames=3, min_gap=2.0)
    steps = [DivideStep(4, 1, {5: a, 6: b}), PropagateStep(start=2, divisions=rule),
             PropagateStep(divisions={"min_age": 2})]
    assert steps[1].divisions == asdict(rule) and steps[1].division_rule == rule
    assert steps[2].divisions == asdict(DivisionRule(min_age=2))  # completed with defaults
    assert PropagateStep().division_rule is None
    record = _record(steps, np.zeros((8, 7, 5)))
    text = record.to_json()
    step = json.loads(text)["steps"][0]
    assert step["type"] == "divide" and [d[0] for d in step["daughters"]] == [5, 6]
    assert isinstance(step["daughters"][0][1]["runs"], list)  # run lengths, as a mask step
    back = SessionRecord.from_json(text)
    assert back == record and back.to_json() == text
    assert back.steps[0].daughter_ids == (5, 6)
    np.testing.assert_array_equal(back.steps[0].daughters[1][1], b)
    assert back.steps[0] != DivideStep(4, 1, {5: a, 6: ~b})
    assert back.obj_ids == [5, 6]


@pytest.mark.parametrize("bad, match", [
    ('{"type": "propagate", "divisions": {"min_age": 0}}', "min_pixels and min_age"),
    ('{"type": "propagate", "divisions": {"colour": 1}}', "colour"),
    ('{"type": "propagate", "divisions": 3}', "divisions must be"),
    ('{"type": "divide", "frame": 2, "parent_id": 1, "daughters": [["a", '
     '{"shape": [1, 1], "runs": [0, 1]}]]}', "daughter's id must be an integer"),
    ('{"type": "divide", "frame": 2, "parent_id": 1.5, "daughters": []}',
     "parent_id must be an integer"),
])
def test_damaged_division_steps(bad, match):
    text = ('{"format": "napari-sam2 session record", "version": 1, "steps": [' + bad + ']}')
    with pytest.raises(DamagedFileError, match=match):
        SessionRecord.from_json(text, source="cells.zarr")


def test_propagation_writes_clear_the_parent_on_a_frame_that_comes_again():
    from napari_sam2.engine.types import FrameResult

    def result(frame, ids):
        logits = np.stack([np.full((2, 3), float(o)) for o in ids]) if ids else \
            np.zeros((0, 2, 3))
        return FrameResult(frame, list(ids), logits, np.ones(len(ids)))

    writes = PropagationWrites((1,), known=(1, 4), start=0)
    assert [o for o, _ in writes(result(0, [1, 4]))[0]] == [1]  # 4 is not in the run
    pastes, again = writes(result(1, [1, 4]))
    assert [o for o, _ in pastes] == [1] and not again
    pastes, again = writes(result(1, [4, 7, 8]))  # frame 1 again: 1 ended, 7 and 8 are new
    assert again and [o for o, _ in pastes] == [1, 7, 8]
    assert not pastes[0][1].any() and pastes[1][1].all()
    assert not writes(result(0, [1, 4]))[1]  # the start frame comes once per pass


def test_replay_of_a_division_marked_by_hand(model, movie):
    images, truth = movie
    first = _session(model, images)
    steps = [PointsStep(0, 1, (_centre(truth[0] == 1),), (1,)),
             PropagateStep(start=0, last=SPLIT + 1)]
    record = _record(steps, images)
    for _ in record.replay(first):
        pass
    daughters = {2: truth[SPLIT] == 2, 3: truth[SPLIT] == 3}
    divided = first.divide(SPLIT, 1, daughters)
    record.append(DivideStep(SPLIT, 1, daughters))
    record.append(PropagateStep(start=SPLIT, last=SPLIT + 2))
    for _ in record.run_step(first, len(record.steps) - 1):
        pass
    assert first.lineage.parents() == {2: 1, 3: 1} and first.obj_ids == [1, 2, 3]

    again = _session(model, images)
    out = list(SessionRecord.from_json(record.to_json()).replay(again))
    index, result = [(i, r) for i, r in out if i == 2][0]  # the division's one result
    assert result.frame == SPLIT
    for o in (1, 2, 3):  # same outputs on the division frame (1 has none there any more)
        assert (o in result.obj_ids) == (o in divided.obj_ids)
    assert [o for o, _ in record.writes(2, result)] == [2, 3]
    _assert_same(_state(first), _state(again))


def test_replay_of_a_propagation_that_finds_a_division(model, movie):
    """The whole movie: the division is found on frame 8 and replays identically."""
    images, truth = movie
    steps = [PointsStep(0, 1, (_centre(truth[0] == 1),), (1,)),
             PropagateStep(start=0, divisions=asdict(DivisionRule()))]
    record = _record(steps, images)
    first = _session(model, images)
    frames = [r.frame for _, r in record.replay(first)]
    assert first.lineage.divisions() == [(1, SPLIT, [2, 3])]
    assert len(frames) > 16 and sorted(set(frames)) == list(range(16))  # frames came again
    again = _session(model, images)
    assert [r.frame for _, r in
            SessionRecord.from_json(record.to_json()).replay(again)] == frames
    _assert_same(_state(first), _state(again))
