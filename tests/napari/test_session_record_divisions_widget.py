"""Divisions in the widget's session record: a division marked by hand and a propagation that
finds one are recorded; the record saved with the labels, replayed on a fresh session, gives
the widget's labels exactly (undoing a division included) and the same lineage."""

import json

import numpy as np
import pytest

from napari_sam2._napari._replay import replay_labels
from napari_sam2._napari._writer import write_zarr
from napari_sam2._napari._reader import read_zarr
from napari_sam2.engine import session_record as sr
from napari_sam2.engine.session import TrackingSession
from tests.napari.conftest import wait_idle
from tests.napari.test_divisions_widget import (
    T_SPLIT,
    clicked,
    clicked_dividing_cell,
    dividing_stack,
)


def _saved_record(c, tmp_path):
    """The widget's record of the shown stack, and the record saved with its labels."""
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    record = c.sessions.recorder.record_of(session)
    (path,) = write_zarr(str(tmp_path / "cells_labels.zarr"), c.labels_layer.data,
                         c.labels_layer.as_layer_data_tuple()[1])
    (data, kwargs, _), *tracks = read_zarr(path)  # the lineage comes as a Tracks layer too
    np.testing.assert_array_equal(np.asarray(data), c.labels_layer.data)
    document = kwargs["metadata"]["napari_sam2"]["session_records"]
    saved = sr.SessionRecord.from_json(json.dumps(document), source=path)
    assert saved == record
    return session, saved


def _replayed(model, record, images):
    """(labels, session) of ``record`` replayed on a fresh session over ``images``."""
    session = TrackingSession(model, images, axis=record.stack_axis,
                              intensity_range=record.intensity_range, bfloat16=record.bfloat16)
    labels = np.zeros(images.shape, np.int32)
    replay_labels(record, session, labels)
    return labels, session


def _mark(c, qtbot, centres):
    """Mark the division of object 1 on ``T_SPLIT`` by two clicks; the daughters' ids."""
    c.select_object(1)
    c.go_to_frame(T_SPLIT)
    assert c.mark_division()
    daughters = c.division.daughters
    for y, x in centres[T_SPLIT]:
        c.prompts.add_point((T_SPLIT, y, x), True)
    wait_idle(qtbot, c)
    return daughters


def test_a_division_by_hand_replays_to_the_widgets_labels(make_napari_viewer,
                                                          trained_demo_model, qtbot, tmp_path):
    """Propagate, divide by hand, undo the division, divide again, track the daughters: the
    replay reverts the undone division in its session too (else the second division, with
    the same new ids, would be refused) and ends with the widget's labels and lineage."""
    viewer, widget, c, centres = clicked(make_napari_viewer(), trained_demo_model, qtbot)
    assert c.propagate("forward", divisions=False)
    wait_idle(qtbot, c)
    d1, d2 = _mark(c, qtbot, centres)
    assert c.undo() > 0
    assert _mark(c, qtbot, centres) == (d1, d2)  # the same ids again
    c.go_to_frame(T_SPLIT)
    assert c.propagate("forward", divisions=False)
    wait_idle(qtbot, c)
    labels = np.array(c.labels_layer.data)
    for t in range(T_SPLIT, labels.shape[0]):
        for oid, (y, x) in zip((d1, d2), centres[t]):
            assert labels[t, y, x] == oid, (t, oid)
    assert not (labels[T_SPLIT:] == 1).any()

    session, saved = _saved_record(c, tmp_path)
    kinds = [type(s).__name__ for s in saved.steps]
    assert kinds == ["PointsStep", "PropagateStep", "DivideStep", "UndoStep", "DivideStep",
                     "PropagateStep"]
    assert saved.steps[2].daughter_ids == (d1, d2) and saved.steps[2].parent_id == 1
    assert saved.steps[-1].divisions is None  # divisions=False
    replayed, again = _replayed(trained_demo_model, saved, dividing_stack()[0])
    np.testing.assert_array_equal(replayed, labels)  # exactly the widget's labels
    assert again.lineage == session.lineage and again.obj_ids == session.obj_ids == [1, d1, d2]


@pytest.fixture
def timelapse(make_napari_viewer, trained_demo_model, qtbot):
    """The widget on ``make_dividing_timelapse`` (one cell dividing on frame 8), the cell
    clicked on frame 0. Returns (controller, images)."""
    widget, images, _ = clicked_dividing_cell(make_napari_viewer(), trained_demo_model, qtbot)
    return widget.controller, images


def test_a_propagation_that_finds_divisions_replays_to_the_widgets_labels(
        timelapse, trained_demo_model, qtbot, tmp_path):
    """Propagate with divisions (the record keeps the rule; its replay finds the division and
    writes the daughters over the frames that come again), undo it, propagate without: the
    replay's undo took the division back out of its session, as the widget's did."""
    from dataclasses import replace

    c, images = timelapse
    assert c.propagate("forward", divisions=True)
    wait_idle(qtbot, c)
    divided = np.array(c.labels_layer.data)
    assert c.objects == {1, 2, 3} and not (divided[8:] == 1).any()
    assert all({2, 3} <= set(np.unique(divided[t])) for t in range(8, 16))
    assert c.undo() > 0 and c.objects == {1}
    c.go_to_frame(0)  # the view followed the run to its end
    # the parent alone over the division: only if the undo reopened its track in the session
    assert c.propagate("forward", frame_range=(0, 9), divisions=False)
    wait_idle(qtbot, c)
    labels = np.array(c.labels_layer.data)
    assert all((labels[t] == 1).any() for t in range(10)) and not labels[10:].any()

    session, saved = _saved_record(c, tmp_path)
    assert [type(s) for s in saved.steps] == [sr.PointsStep, sr.PropagateStep, sr.UndoStep,
                                              sr.PropagateStep]
    assert saved.steps[1].division_rule is not None and saved.steps[3].divisions is None
    first, at_first = _replayed(trained_demo_model, replace(saved, steps=saved.steps[:2]),
                                images)
    np.testing.assert_array_equal(first, divided)  # the run with the division, exactly
    assert at_first.lineage.divisions() == [(1, 8, [2, 3])]
    replayed, again = _replayed(trained_demo_model, saved, images)
    np.testing.assert_array_equal(replayed, labels)  # and all of it
    assert again.lineage == session.lineage and again.obj_ids == session.obj_ids == [1]


def test_reopened_labels_restore_the_daughters_found(timelapse, trained_demo_model, qtbot,
                                                     tmp_path, make_napari_viewer):
    """Saved after a run that found a division, reopened: the replayed session has the
    daughters and their lineage, the widget knows them as objects, the labels stay."""
    c, images = timelapse
    assert c.propagate("forward", divisions=True)
    wait_idle(qtbot, c)
    session, _ = _saved_record(c, tmp_path)
    labels = np.array(c.labels_layer.data)

    new = make_napari_viewer()
    new.add_image(images, name="cells", axis_labels=("t", "y", "x"),
                  contrast_limits=c.image_layer.contrast_limits)
    _, widget = new.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c2 = widget.controller
    layer, *_ = new.open(str(tmp_path / "cells_labels.zarr"), plugin="napari-sam2")
    assert c2.labels_layer == layer and c2.objects == {1}  # before the replay: the click's
    c2.set_model(trained_demo_model, "sam2_demo")
    wait_idle(qtbot, c2)
    assert c2.objects == {1, 2, 3}
    again = c2.sessions.get(c2.image_layer, c2.current_ref(), create=False)
    assert again.lineage == session.lineage and again.lineage.divisions() == [(1, 8, [2, 3])]
    np.testing.assert_array_equal(layer.data, labels)
