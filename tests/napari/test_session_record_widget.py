"""The widget records its session; the record is saved with the labels by both writers; replayed
on a fresh session it gives the widget's labels exactly; reopened, it restores the session."""

import json

import numpy as np
import pytest

from napari_sam2._napari._reader import read_tiff, read_zarr
from napari_sam2._napari._replay import replay_labels
from napari_sam2._napari._writer import write_tiff, write_zarr
from napari_sam2.engine import session_record as sr
from napari_sam2.engine.session import TrackingSession

from tests.napari.conftest import docked, square_stack, wait_idle

WRITERS = {".zarr": (write_zarr, read_zarr), ".tif": (write_tiff, read_tiff)}


def three_objects():
    """(6, 48, 72) uint16: the moving square of ``square_stack``, a still square at the left
    and a bright bar at the top right (for a box)."""
    img = square_stack()
    img[:, 36:47, 3:17] = 2600
    img[:, 3:11, 52:68] = 2800
    return img


@pytest.fixture
def sam(make_napari_viewer, trained_demo_model, qtbot):
    """(viewer, widget, controller) on ``three_objects`` with the shipped sam2_demo."""
    return docked(make_napari_viewer, three_objects(), trained_demo_model, qtbot)


def _work(c, qtbot):
    """Clicks, a box, a contrast change, a propagation, a correction, a painted mask, "both"
    over a range, a delete and its undo: every kind of step the widget records."""
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    c.new_object()
    c.prompts.add_point((0, 41, 10), True)
    wait_idle(qtbot, c)
    c.prompts.add_point((0, 44, 60), False)
    wait_idle(qtbot, c)
    c.image_layer.contrast_limits = (450, 3100)
    wait_idle(qtbot, c)
    assert c.propagate("forward")
    wait_idle(qtbot, c)
    c.select_object(1)
    c.go_to_frame(4)
    c.prompts.add_point((4, 20, 40), False)  # a correction on a tracked frame
    wait_idle(qtbot, c)
    obj = c.new_object()
    corners = np.array([[4, 1, 50], [4, 1, 70], [4, 13, 70], [4, 13, 50]], float)
    c.prompts.boxes.add_rectangles(corners)
    wait_idle(qtbot, c)
    c.go_to_frame(2)
    c.labels_layer.data[2, 40:46, 30:38] = obj + 1  # painted by hand, then used as prompt
    c.select_object(obj + 1)
    c.objects.add(obj + 1)
    c.mask_as_prompt()
    wait_idle(qtbot, c)
    assert c.propagate("both", frame_range=(1, 4), obj_ids=[1, obj + 1])
    wait_idle(qtbot, c)
    c.delete_objects([2, obj])
    assert c.undo() > 0
    c.overwrite = True


def _session(model, record, image):
    return TrackingSession(model, image, axis=record.stack_axis,
                           intensity_range=record.intensity_range, bfloat16=record.bfloat16)


@pytest.mark.parametrize("ext", [".zarr", ".tif"])
def test_replay_of_the_saved_record_gives_the_widgets_labels(sam, qtbot, trained_demo_model,
                                                            tmp_path, ext):
    viewer, widget, c = sam
    _work(c, qtbot)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    record = c.sessions.recorder.record_of(session)
    kinds = [type(s) for s in record.steps]
    for kind in (sr.PointsStep, sr.BoxStep, sr.MaskStep, sr.PropagateStep, sr.IntensityStep,
                 sr.RemoveStep, sr.UndoStep, sr.OverwriteStep):
        assert kind in kinds, kind
    both = [s for s in record.steps if isinstance(s, sr.PropagateStep)][-1]
    assert (both.start, both.direction, both.first, both.last) == (2, "both", 1, 4)
    assert record.model == "sam2_demo" and record.image_shape == (6, 48, 72)
    assert record.scale == (1.0, 0.5, 2.0) and record.intensity_range == (400.0, 3200.0)
    labels = np.array(c.labels_layer.data)
    assert set(np.unique(labels)) >= {0, 1, 2, 4}  # 3 was deleted
    assert (labels[0, 14:34, 20:44] == 1).mean() > 0.8  # real masks of the clicked objects
    assert (labels[0, 36:47, 3:17] == 2).mean() > 0.5

    write, read = WRITERS[ext]
    (path,) = write(str(tmp_path / f"cells_labels{ext}"), c.labels_layer.data,
                    c.labels_layer.as_layer_data_tuple()[1])
    (data, kwargs, _), *tracks = read(path)  # and the lineage's Tracks layer (issue 20)
    assert [t[2] for t in tracks] == ["tracks"]
    np.testing.assert_array_equal(np.asarray(data), labels)
    document = kwargs["metadata"]["napari_sam2"]["session_records"]
    saved = sr.SessionRecord.from_json(json.dumps(document), source=path)
    assert saved == record

    replayed = np.zeros_like(labels)
    replay_labels(saved, _session(trained_demo_model, saved, three_objects()), replayed)
    np.testing.assert_array_equal(replayed, labels)  # exactly the widget's labels


def test_labels_without_a_record_still_open(make_napari_viewer, tmp_path):
    labels = np.zeros((3, 20, 20), np.int32)
    labels[1, 5:9, 5:9] = 2
    (path,) = write_zarr(str(tmp_path / "old_labels.zarr"), labels, {"name": "old"})
    ((data, kwargs, _),) = read_zarr(path)
    assert "session_records" not in kwargs["metadata"]["napari_sam2"]
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(3, (20, 20)), name="img")
    layer = viewer.add_labels(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    assert widget.controller.labels_layer is None  # not picked for the user: no record
    assert widget.controller.set_labels_layer(layer)
    assert widget.controller.pending_restore is None


def test_damaged_record_is_reported_and_the_labels_stay(make_napari_viewer, demo_model):
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    said = []
    c.status.connect(said.append)
    labels = np.zeros((6, 48, 72), np.int32)
    labels[0, 10:20, 10:20] = 5
    layer = viewer.add_labels(labels, name="broken", metadata={
        "napari_sam2": {"session_records": {"format": "napari-sam2 session record",
                                            "version": 1, "records": [{"version": 1}]}}})
    c.set_labels_layer(layer)
    assert any("session record" in s and "'broken'" in s for s in said)
    assert (layer.data[0] == 5).sum() == 100 and c.pending_restore is None
    assert all(not s.obj_ids for s in c.sessions.all())


def test_reopen_restores_objects_prompts_and_session(sam, qtbot, trained_demo_model, tmp_path,
                                                     make_napari_viewer):
    """Save, reopen in a new viewer, go on correcting: same objects, prompts and session, and
    the record (old + new steps) replayed from scratch still gives the widget's labels."""
    viewer, widget, c = sam
    _work(c, qtbot)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    objects, points = set(c.objects), np.array(c.prompts.points.data)
    point_ids = c.prompts.points.features["obj_id"].to_numpy(int)
    boxes = [np.array(b) for b in c.prompts.boxes.data]
    cond = {o: session.conditioning_frames(o) for o in session.obj_ids}
    (path,) = write_zarr(str(tmp_path / "cells_labels.zarr"), c.labels_layer.data,
                         c.labels_layer.as_layer_data_tuple()[1])
    saved_labels = np.array(c.labels_layer.data)
    saved_labels[5, 0:3, 0:3] = 9  # a manual edit after the last SAM write: must survive
    c.labels_layer.data[5, 0:3, 0:3] = 9
    (path,) = write_zarr(path, c.labels_layer.data, c.labels_layer.as_layer_data_tuple()[1])

    new = make_napari_viewer()
    new.add_image(three_objects(), name="img", scale=(1.0, 0.5, 2.0),
                  translate=(3.0, 10.0, -5.0), axis_labels=("t", "y", "x"))
    _, widget2 = new.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c2 = widget2.controller
    assert c2.image_layer == new.layers["img"] and c2.labels_layer is None
    labels_layer, *tracks = new.open(path, plugin="napari-sam2")
    assert [type(t).__name__ for t in tracks] == ["Tracks"]  # the lineage saved with them
    assert c2.labels_layer == labels_layer  # the image's saved labels are picked on opening
    assert widget2._labels_combo.currentText() == labels_layer.name
    assert c2.pending_restore is not None  # no model yet: objects and prompts only
    assert c2.objects == objects
    assert tuple(new.layers["img"].contrast_limits) == (400, 3200)  # what the record began with
    c2.set_model(trained_demo_model, "sam2_demo")
    wait_idle(qtbot, c2)
    np.testing.assert_array_equal(labels_layer.data, saved_labels)  # nothing pasted
    assert not c2.set_labels_layer(labels_layer) or c2.pending_restore is None  # not twice
    assert tuple(new.layers["img"].contrast_limits) == (450, 3100)  # where it ended
    again = c2.sessions.get(c2.image_layer, c2.current_ref(), create=False)
    assert {o: again.conditioning_frames(o) for o in again.obj_ids} == cond
    # the prompt layers hold the prompts in force (the removed object's are gone)
    keep = point_ids != 2
    np.testing.assert_allclose(np.array(c2.prompts.points.data), points[keep])
    assert len(c2.prompts.boxes.data) == len(boxes) == 0  # the box's object was deleted
    # go on: a correction and a propagation, as if napari had never closed
    c2.select_object(1)
    c2.go_to_frame(5)
    c2.prompts.add_point((5, 26, 40), True)
    wait_idle(qtbot, c2)
    assert c2.propagate("backward", frame_range=(3, 5))
    wait_idle(qtbot, c2)
    np.testing.assert_array_equal(labels_layer.data[5, 0:3, 0:3], 9)  # manual edit kept
    assert not c2.overwrite  # the widget's setting now (the record says so for the replay)
    record = c2.sessions.recorder.record_of(again)
    assert len(record.steps) > len(c.sessions.recorder.record_of(session).steps)
    (path2,) = write_zarr(str(tmp_path / "again_labels.zarr"), labels_layer.data,
                          labels_layer.as_layer_data_tuple()[1])
    (_, kwargs, _), *_ = read_zarr(path2)
    (back,) = sr.load_records(kwargs["metadata"]["napari_sam2"]["session_records"])
    replayed = np.zeros_like(saved_labels)
    replayed[5, 0:3, 0:3] = 9  # the manual edit
    replay_labels(back, _session(trained_demo_model, back, three_objects()), replayed)
    np.testing.assert_array_equal(replayed, labels_layer.data)


def test_a_record_of_another_image_is_not_restored(make_napari_viewer):
    record = sr.SessionRecord(steps=[sr.PointsStep(0, 1, ((20, 30),), (1,))],
                              image_shape=(6, 48, 72), image_name="img")
    meta = {"napari_sam2": {"session_records": sr.records_document([record])}}
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(), name="other")  # same shape, another image
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    said = []
    c.status.connect(said.append)
    layer = viewer.add_labels(np.zeros((6, 48, 72), np.int32), name="img labels", metadata=meta)
    assert c.labels_layer is None  # not picked on opening
    assert c.set_labels_layer(layer)
    assert c.pending_restore is None and not c.objects and not len(c.prompts.points.data)
    assert "made on the image 'img'" in said[-1] and "not restored" in said[-1]


def test_a_loaded_model_records_its_name_and_checkpoint_hash(make_napari_viewer, qtbot):
    from napari_sam2._napari._recorder import checkpoint_sha256

    viewer = make_napari_viewer()
    viewer.add_image(three_objects(), name="img", contrast_limits=(400, 3200))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.load_model("sam2_demo", device="cpu")
    qtbot.waitUntil(lambda: c.sessions.model is not None and not c.jobs.busy, timeout=60_000)
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    record = c.sessions.recorder.record_of(session)
    assert record.model == "sam2_demo" and record.device == "cpu"
    assert record.checkpoint_sha256 == checkpoint_sha256("sam2_demo") is not None
    saved = c.labels_layer.metadata["napari_sam2"]["session_records"]["records"]
    assert saved[0]["checkpoint_sha256"] == record.checkpoint_sha256
