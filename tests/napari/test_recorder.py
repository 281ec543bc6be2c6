"""The widget's recorder without a viewer: every session change becomes a step, a cancelled run
records how far it went, and replaying the record into empty labels gives the same labels."""

import json

import numpy as np

from napari_sam2._napari._recorder import checkpoint_sha256
from napari_sam2._napari._replay import replay_labels
from napari_sam2._napari._stack import stack_ref
from napari_sam2._napari._workers import PropagationPlan
from napari_sam2.engine import TrackingSession
from napari_sam2.engine.session_record import PropagateStep, SessionRecord
from tests.napari.test_controller_headless import ImageArray, LabelsArray, _centre, _parts


def test_shipped_checkpoint_hash_is_its_record():
    from napari_sam2.model.loading import shipped_weights_path

    record = json.loads(shipped_weights_path("sam2_demo").with_suffix(".json").read_text())
    assert checkpoint_sha256("sam2_demo") == record["sha256"]
    assert checkpoint_sha256("no_such_model") is None


def test_cancelled_run_is_recorded_and_replayed_exactly(trained_demo_model):
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, truth = make_cell_timelapse(n_frames=6, shape=(96, 128), n_cells=3, seed=4)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    image, labels = ImageArray(images, (lo, hi)), LabelsArray(images.shape)
    image.scale, image.translate = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    log = {"say": [], "error": [], "progress": [], "written": []}
    clicks, tracker, jobs, sessions, writer = _parts(trained_demo_model, log)
    ref = stack_ref(images.shape, 0, (2, 0, 0))
    for obj in (1, 2):
        clicks.segment(image, labels, ref, 2, obj, [_centre(truth[2] == obj)], [1])
    session = sessions.get(image, ref, create=False)
    plan = PropagationPlan(start=2, first=0, last=5, forward=True, backward=True)
    seen = []

    def cancel_after_four(result):  # the user presses Cancel while frame 4 is shown
        seen.append(result.frame)
        if len(seen) == 4:
            tracker.cancel()

    tracker._on_frame = cancel_after_four  # writes nothing: the replay below writes itself
    tracker.start(session, image, labels, ref, plan)
    assert seen == [2, 3, 4, 5]  # both: forward first, cancelled before the backward pass
    record = sessions.recorder.record_of(session)
    assert record.steps[-1] == PropagateStep(start=2, direction="both", first=0, last=5,
                                             frames_done=4)
    assert record.image_shape == images.shape and record.intensity_range == (lo, hi)

    back = SessionRecord.from_json(record.to_json())
    fresh = TrackingSession(trained_demo_model, images, intensity_range=back.intensity_range,
                            bfloat16=back.bfloat16)
    out = np.zeros(images.shape, np.int32)
    replay_labels(back, fresh, out)
    assert fresh.frames_with_output(1) == session.frames_with_output(1) == [2, 3, 4, 5]
    for f in (2, 3, 4, 5):
        np.testing.assert_array_equal(fresh.result(f).logits, session.result(f).logits)
    np.testing.assert_array_equal(out[2], labels.data[2])  # the clicks' masks, as pasted
