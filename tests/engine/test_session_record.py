"""Session records: JSON round trip, damaged inputs, and replay on the shipped sam2_demo model."""

import json

import numpy as np
import pytest

from napari_sam2.data.synthetic import make_cell_timelapse
from napari_sam2.engine.session_record import (
    BoxStep,
    ClearStep,
    IntensityStep,
    MaskStep,
    OverwriteStep,
    PointsStep,
    PropagateStep,
    RemoveStep,
    SessionRecord,
    UndoStep,
    dump_records,
    load_records,
    mask_from_rle,
    mask_to_rle,
)
from napari_sam2.errors import DamagedFileError


def _every_step():
    rng = np.random.default_rng(0)
    mask = rng.random((12, 9)) > 0.6
    return [
        PointsStep(0, 1, ((4.5, 6.0), (2, 3)), (1, 0)),
        PointsStep(2, 1, ((1.0, 1.0),), (1,), clear=False),
        BoxStep(1, 2, (1, 2, 8, 7)),
        BoxStep(1, 3, (0, 0, 5, 5), points=((2.0, 2.0),), labels=(0,)),
        MaskStep(3, 4, mask),
        ClearStep(2, 1), ClearStep(3, None),
        RemoveStep(4),
        PropagateStep(start=1, direction="both", max_frames=5, obj_ids=(1, 2),
                      stop_after_absent=3, first=0, last=7, frames_done=4),
        PropagateStep(),
        IntensityStep((100.0, 3000.0)), IntensityStep(None),
        UndoStep(), OverwriteStep(True),
    ]


def _record(steps):
    return SessionRecord(
        steps=steps, model="sam2_demo", checkpoint_sha256="ab" * 32, image_shape=(3, 8, 12, 9),
        stack_axis=1, other_axes={0: 2}, intensity_range=(10, 200), scale=(1, 2, 0.5, 0.5),
        translate=(0, 0, 3, 4), bfloat16=False, device="cpu", image_name="cells",
    )


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (3, 64)])
@pytest.mark.parametrize("fill", ["random", "empty", "full", "first"])
def test_rle_round_trip(shape, fill):
    rng = np.random.default_rng(1)
    mask = {"random": rng.random(shape) > 0.5, "empty": np.zeros(shape, bool),
            "full": np.ones(shape, bool)}.get(fill)
    if mask is None:
        mask = np.zeros(shape, bool)
        mask.flat[0] = True
    rle = mask_to_rle(mask)
    assert sum(rle["runs"]) == mask.size
    assert np.array_equal(mask_from_rle(json.loads(json.dumps(rle))), mask)


def test_json_round_trip_keeps_every_field_and_step():
    record = _record(_every_step())
    text = record.to_json()
    back = SessionRecord.from_json(text, source="x.zarr")
    assert back == record  # dataclass equality: every field, every step (masks by value)
    assert back.other_axes == {0: 2} and back.stack_axis == 1
    assert back.to_json() == text
    assert back.obj_ids == [1, 2, 3]  # 4 was removed
    # several stacks in one document
    other = _record([PointsStep(0, 5, ((1, 1),), (1,))])
    other.other_axes = {0: 1}
    both = load_records(dump_records([record, other]), source="y")
    assert both == [record, other]
    with pytest.raises(DamagedFileError, match="2 session records in y"):
        SessionRecord.from_json(dump_records([record, other]), source="y")


def test_mask_step_is_compact_in_json():
    mask = np.zeros((512, 512), bool)
    mask[100:200, 50:300] = True
    text = _record([MaskStep(0, 1, mask)]).to_json()
    assert len(text) < 2500  # 100 rows of two runs each, not 262144 pixels


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "no napari-sam2 session record"),
    ('{"format": "something else"}', "no napari-sam2 session record"),
    ('{"format": "napari-sam2 session record", "version": 99}', "version 99"),
    ('{"format": "napari-sam2 session record", "version": 1, "steps": [{"type": "dance"}]}',
     "bad step 0: unknown step type 'dance'"),
    ('{"format": "napari-sam2 session record", "version": 1, "steps": '
     '[{"type": "points", "frame": "zero", "obj_id": 1, "points": [], "labels": []}]}',
     "bad step 0: points step: frame must be an integer"),
    ('{"format": "napari-sam2 session record", "version": 1, "steps": '
     '[{"type": "mask", "frame": 0, "obj_id": 1, "mask": {"shape": [2, 2], "runs": [1]}}]}',
     "bad step 0: bad run-length mask"),
    ('{"format": "napari-sam2 session record", "version": 1, "steps": '
     '[{"type": "propagate", "direction": "sideways"}]}', "bad step 0: direction must be"),
    ('{"format": "napari-sam2 session record", "version": 1, "steps": '
     '[{"type": "remove", "obj_id": 1, "colour": "red"}]}', "unknown fields"),
    ('{"format": "napari-sam2 session record", "version": 2, "records": []}', "version 2"),
])
def test_damaged_records_name_the_source(text, match):
    with pytest.raises(DamagedFileError, match=match) as info:
        SessionRecord.from_json(text, source="/data/cells_labels.tif")
    assert "/data/cells_labels.tif" in str(info.value)


# ---------------------------------------------------------------------- replay
@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def cells():
    images, truth = make_cell_timelapse(n_frames=6, shape=(96, 128), n_cells=3, seed=2)
    return images, truth


def _centre(mask):
    rows, cols = np.nonzero(mask)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return float(rows[i]), float(cols[i])


def _labels(record, session, shape):
    """Paste what the widget pastes (first-come, no overwriting: enough without overlaps)."""
    labels = np.zeros(shape, np.int32)
    for index, result in record.replay(session):
        for obj, mask in record.writes(index, result):
            plane = labels[result.frame]
            plane[(plane == obj) & ~mask] = 0
            plane[mask & (plane == 0)] = obj
    return labels


def test_replay_equals_the_direct_calls(model, cells):
    """The steps replayed on a fresh session give what the same calls gave, frame for frame,
    including "both" from the middle, a correction, a mask prompt and a cancelled run."""
    from napari_sam2.engine.passes import propagate_passes
    from napari_sam2.engine.session import TrackingSession

    images, truth = cells
    rng = (float(images.min()), float(images.max()))
    p1, p2 = _centre(truth[3] == 1), _centre(truth[3] == 2)
    steps = [
        PointsStep(3, 1, (p1,), (1,)),
        BoxStep(3, 2, (p2[0] - 8, p2[1] - 8, p2[0] + 8, p2[1] + 8)),
        PropagateStep(start=3, direction="both"),
        PointsStep(5, 1, (p1, (p1[0] + 3, p1[1])), (1, 0)),
        MaskStep(1, 3, truth[1] == 3),
        PropagateStep(start=1, direction="forward", obj_ids=(3,), frames_done=2),
        UndoStep(),
    ]
    record = _record(steps)

    direct = TrackingSession(model, images, intensity_range=rng, bfloat16=False)
    expected = [direct.add_points(3, 1, [p1], [1]),
                direct.add_box(3, 2, steps[1].box)]
    expected += list(propagate_passes(direct, 3, direction="both"))
    expected.append(direct.add_points(5, 1, [p1, (p1[0] + 3, p1[1])], [1, 0]))
    expected.append(direct.add_mask(1, 3, truth[1] == 3, others=False))  # as the widget
    expected += list(propagate_passes(direct, 1, obj_ids=[3], limit=2))

    fresh = TrackingSession(model, images, intensity_range=rng, bfloat16=False)
    got = list(SessionRecord.from_json(record.to_json()).replay(fresh))
    assert [r.frame for _, r in got] == [r.frame for r in expected]
    assert [i for i, _ in got] == [0, 1] + [2] * 7 + [3, 4, 5, 5]  # both: 3-5 then 3-0
    for (_, a), b in zip(got, expected):
        assert a.obj_ids == b.obj_ids
        np.testing.assert_array_equal(a.logits, b.logits)
    assert fresh.obj_ids == direct.obj_ids == [1, 2, 3]
    assert fresh.conditioning_frames(1) == direct.conditioning_frames(1) == [3, 5]

    labels = _labels(record, TrackingSession(model, images, intensity_range=rng,
                                             bfloat16=False), images.shape)
    assert {0, 1, 2} <= set(np.unique(labels).tolist())
    assert (labels[0] == 1).any() and (labels[5] == 2).any()


def test_replay_of_clear_remove_and_intensity(model, cells):
    from napari_sam2.engine.session import TrackingSession

    images, truth = cells
    p1, p2 = _centre(truth[0] == 1), _centre(truth[0] == 2)
    record = _record([
        PointsStep(0, 1, (p1,), (1,)), PointsStep(0, 2, (p2,), (1,)),
        PointsStep(2, 1, (p1,), (1,)), ClearStep(2, 1), RemoveStep(2),
        IntensityStep((float(images.min()), float(np.percentile(images, 99)))),
        PropagateStep(start=0, max_frames=2),
    ])
    session = TrackingSession(model, images, bfloat16=False)
    got = list(record.replay(session))
    assert [i for i, _ in got] == [0, 1, 2, 6, 6, 6]
    assert session.obj_ids == [1] and session.conditioning_frames(1) == [0]
    assert session.state.intensity_range == record.steps[5].intensity_range
    assert got[-1][1].obj_ids == [1]


def test_prompts_in_force():
    mask = np.zeros((4, 4), bool)
    record = _record([
        PointsStep(0, 1, ((1, 1),), (1,)),
        PointsStep(0, 1, ((2, 2),), (0,), clear=False),   # added to the frame's points
        BoxStep(0, 2, (0, 0, 3, 3)),
        PointsStep(0, 2, ((1, 2),), (1,), clear=False),   # a click added to the box
        PointsStep(1, 1, ((3, 3),), (1,)),
        ClearStep(1, 1),                                  # frame 1's prompts of 1 deleted
        MaskStep(2, 3, mask),
        PointsStep(2, 4, ((0, 0),), (1,)), RemoveStep(4),
    ])
    prompts = record.prompts()
    assert list(prompts) == [(0, 1), (0, 2), (2, 3)]
    assert prompts[(0, 1)] == PointsStep(0, 1, ((1, 1), (2, 2)), (1, 0))
    assert prompts[(0, 2)] == BoxStep(0, 2, (0, 0, 3, 3), ((1, 2),), (1,))
    assert isinstance(prompts[(2, 3)], MaskStep)


@pytest.mark.parametrize("window", [None, "auto", 256])
def test_window_setting_round_trips(window):
    record = SessionRecord(model="sam2_demo", image_shape=(4, 32, 32), window=window)
    assert SessionRecord.from_json(record.to_json()).window == window
