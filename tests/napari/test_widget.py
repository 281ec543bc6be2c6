"""The SAM 2 widget in a real napari viewer (Xvfb): clicks, masks, propagation, undo."""

import numpy as np
from qtpy.QtCore import QPoint, Qt

from tests.napari.conftest import assert_same_mask, wait_idle

FRAME_KEY = lambda t: (t, slice(None), slice(None))  # noqa: E731


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas.native


def test_real_mouse_clicks_land_on_the_right_frame_and_pixel(sam, qtbot):
    viewer, widget, c = sam
    c.go_to_frame(2)
    viewer.camera.center = (0, 10 + 0.5 * 24, -5 + 2.0 * 30)  # world position of pixel (24, 30)
    viewer.camera.zoom = 8
    qtbot.wait(50)
    canvas = _canvas(viewer)
    centre = QPoint(canvas.width() // 2, canvas.height() // 2)
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=centre)
    wait_idle(qtbot, c)
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton, pos=centre + QPoint(40, 0))
    wait_idle(qtbot, c)
    points = c.prompts.points
    assert len(points.data) == 2
    np.testing.assert_allclose(points.data[0], (2, 24, 30), atol=0.5)
    assert points.data[1][2] > 30 and points.data[1][0] == 2  # 40 px right at zoom 8 = 2.5 px
    assert points.features["positive"].tolist() == [True, False]
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.prompt_frames(1) == [2]
    result = session.result(2)
    mask = result.mask_of(1)
    assert mask.sum() > 0, "the seeded demo model should give a non-empty mask here"
    labels = c.labels_layer.data
    np.testing.assert_array_equal(labels[2] == 1, mask)  # the right frame, the right pixels
    assert labels[[0, 1, 3, 4, 5]].max() == 0  # and no other frame


def test_programmatic_prompt_keeps_other_objects_and_manual_edits(sam, qtbot):
    viewer, widget, c = sam
    labels = c.labels_layer.data
    labels[0, 20:26, 25:31] = 2  # another object inside the square
    labels[0, 0:3, 0:3] = 9  # a manual edit elsewhere
    labels[1, 14:34, 20:44] = 5  # an object on another frame
    before = labels.copy()
    c.select_object(1)
    c.prompts.add_point((0, 24, 35), True)
    wait_idle(qtbot, c)
    mask = c.sessions.get(c.image_layer, c.current_ref(), create=False).result(0).mask_of(1)
    assert mask[20:26, 25:31].any()  # SAM's mask covers the other object...
    assert (labels[0, 20:26, 25:31] == 2).all()  # ...which is not overwritten
    assert (labels[0, 0:3, 0:3] == 9).all() and (labels[1] == before[1]).all()
    written = (labels[0] == 1)
    np.testing.assert_array_equal(written, mask & (before[0] == 0))
    # a box on the Shapes layer for a new object
    obj = c.new_object()
    assert obj == 10  # next free label above the manual 9
    c.prompts.boxes.add_rectangles(np.array([[0, 14, 20], [0, 14, 44], [0, 34, 44], [0, 34, 20]], float))
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert 10 in session.obj_ids and session.prompt_frames(10) == [0]


def test_propagation_streams_and_undo(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    after_click = c.labels_layer.data.copy()
    updates = []
    c.progress.connect(
        lambda done, total, fps: updates.append((done, total, c.labels_layer.data.copy(), c.propagating))
    )
    widget._direction_combo.setCurrentText("forward")
    widget._propagate_button.click()
    assert c.propagating
    wait_idle(qtbot, c)
    assert [u[0] for u in updates] == [1, 2, 3, 4, 5, 6] and updates[0][1] == 6
    # frames arrive one by one: after the 3rd update only frames <= 2 were written
    assert updates[2][2][3:].max() == 0
    assert all(u[3] for u in updates)  # every update arrived while the worker was running
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    for t in range(6):
        expected = session.result(t).mask_of(1) if 1 in session.result(t).obj_ids else False
        assert_same_mask(c.labels_layer.data[t] == 1, expected)
    assert "propagated 6 frames" in widget._status_label.text()
    assert "frames/s" in widget._speed_label.text()
    assert viewer.dims.current_step[0] == 5  # followed the propagation
    record = c.labels_layer.metadata["napari_sam2"]  # saved with the labels by our writers
    assert record["model"] == "sam2_demo" and record["stack_axis"] == "t"
    assert record["objects"] == [1] and record["intensity_range"] == [400.0, 3200.0]
    widget._undo_button.click()
    np.testing.assert_array_equal(c.labels_layer.data, after_click)
    c.undo()
    assert c.labels_layer.data.max() == 0


def test_cancel_stops_within_a_frame_and_keeps_what_was_done(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    seen, at_cancel = [], []

    def on_progress(done, total, fps):
        seen.append(done)
        if done == 2:
            # frames the worker had finished when Cancel was pressed (some may still be
            # queued for the main thread)
            at_cancel.append(len(session.frames_with_output(1)))
            widget._cancel_button.click()

    c.progress.connect(on_progress)
    c.propagate("forward")
    wait_idle(qtbot, c)
    assert max(seen) <= at_cancel[0] + 1, (seen, at_cancel)
    assert "cancelled after" in widget._status_label.text()
    # the frames done are kept; the session can propagate again
    assert set(session.frames_with_output(1)) >= {0, 1}
    written = [t for t in range(6) if (c.labels_layer.data[t] == 1).any()]
    assert session.frames_with_output(1) == list(range(max(seen)))
    assert written == session.frames_with_output(1) or written == [
        t for t in session.frames_with_output(1) if session.result(t).mask_of(1).any()]
    c.progress.disconnect(on_progress)
    assert c.propagate("forward")
    wait_idle(qtbot, c)
    assert session.frames_with_output(1) == list(range(6))
    # a correction on frame 3 re-segments it at once and becomes a conditioning frame;
    # propagating again from there rewrites the frames after it, not those before
    before = c.labels_layer.data.copy()
    c.go_to_frame(3)
    c.prompts.add_point((3, 40, 60), False)
    wait_idle(qtbot, c)
    assert 3 in session.conditioning_frames(1)
    assert (c.labels_layer.data[:3] == before[:3]).all()
    assert c.propagate("forward")
    wait_idle(qtbot, c)
    for t in (4, 5):
        assert_same_mask(c.labels_layer.data[t] == 1, session.result(t).mask_of(1))
    assert (c.labels_layer.data[:3] == before[:3]).all()


def test_both_directions_range_and_selected_objects(sam, qtbot):
    viewer, widget, c = sam
    c.go_to_frame(3)
    c.prompts.add_point((3, 24, 36), True)
    wait_idle(qtbot, c)
    c.new_object()
    c.prompts.add_point((3, 40, 5), True)
    wait_idle(qtbot, c)
    assert c.propagate("both", frame_range=(1, 4), obj_ids=[1])
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.frames_with_output(1) == [1, 2, 3, 4]
    assert session.frames_with_output(2) == [3]
    assert 3 in c.frames_covered(1) and set(c.frames_covered(1)) <= {1, 2, 3, 4}
    assert c.frames_covered(2) == [3]
    assert widget._table.rowCount() == 2


def test_track_all_existing_labels_and_painted_mask(sam, qtbot):
    viewer, widget, c = sam
    labels = c.labels_layer.data
    labels[0, 14:34, 20:44] = 4  # e.g. from Cellpose
    labels[0, 40:46, 2:10] = 7
    widget._track_all_button.click()
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.obj_ids == [4, 7]
    assert c.frames_covered(7) == [0] and widget._table.rowCount() == 2
    np.testing.assert_array_equal(session.result(0).mask_of(4), labels[0] == 4)
    assert c.propagate("forward", obj_ids=[4])
    wait_idle(qtbot, c)
    assert session.frames_with_output(4) == list(range(6))
    assert (labels[0] == 4).sum() == 20 * 24  # the painted prompt frame is kept as painted
    c.select_object(7)
    widget._mask_button.click()
    wait_idle(qtbot, c)
    assert session.prompt_frames(7) == [0]


def test_contrast_limits_are_the_intensity_range(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.state.intensity_range == (400.0, 3200.0)
    c.image_layer.contrast_limits = (100, 1000)
    wait_idle(qtbot, c)
    assert session.state.intensity_range == (100.0, 1000.0)


def test_delete_object(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    c.delete_objects([1])
    assert (c.labels_layer.data == 1).sum() == 0 and len(c.prompts.points.data) == 0
    assert 1 not in c.sessions.get(c.image_layer, c.current_ref(), create=False).obj_ids
    c.undo()
    assert (c.labels_layer.data == 1).sum() > 0


def test_deleting_prompt_points_resegments_the_frame(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    c.prompts.add_point((0, 40, 60), False)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    points = c.prompts.points
    points.selected_data = {1}
    assert session.state.tracks[1].points[0].labels.tolist() == [1, 0]
    points.remove_selected()  # the user deletes the negative point
    wait_idle(qtbot, c)
    assert session.state.tracks[1].points[0].labels.tolist() == [1]  # re-segmented without it
    np.testing.assert_array_equal(c.labels_layer.data[0] == 1, session.result(0).mask_of(1))
    points.selected_data = {0}
    points.remove_selected()  # and the last one: the frame has no prompt left
    wait_idle(qtbot, c)
    assert session.prompt_frames(1) == [] and (c.labels_layer.data == 1).sum() == 0
