"""Box prompts, Delete, Painted mask as prompt and Track all labels here, walked as a user does
them (issue 23): drags through napari's mouse bindings, buttons and table rows clicked."""

import numpy as np
from qtpy.QtCore import Qt

from tests.napari.conftest import wait_idle


def _drag(layer, c, start, end, steps=6):
    """A left-button drag from pixel ``start`` to ``end`` (row, col) on the shown frame, through
    napari's own mouse bindings of ``layer`` (the path napari's tests use for shape drawing:
    Qt events sent to the canvas under Xvfb all arrive at one position)."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    def world(rc):
        return tuple(c.image_layer.data_to_world((c.current_frame(), *rc)))

    common = {"view_direction": (1, 0, 0), "dims_displayed": [1, 2], "button": 1}
    mouse_press_callbacks(layer, read_only_mouse_event(
        type="mouse_press", position=world(start), **common))
    for k in range(1, steps + 1):
        rc = np.asarray(start) + (np.asarray(end) - np.asarray(start)) * k / steps
        mouse_move_callbacks(layer, read_only_mouse_event(
            type="mouse_move", position=world(rc), is_dragging=True, **common))
    mouse_release_callbacks(layer, read_only_mouse_event(
        type="mouse_release", position=world(end), **common))


def test_box_drawn_with_the_mouse_segments_the_current_object(sam, qtbot):
    viewer, widget, c = sam
    boxes = c.prompts.boxes
    viewer.layers.selection.active = boxes
    boxes.mode = "add_rectangle"
    _drag(boxes, c, (12, 18), (36, 46))
    qtbot.wait(20)  # the box is read once napari has finished the rectangle
    wait_idle(qtbot, c)
    assert len(boxes.data) == 1 and boxes.features["obj_id"].tolist() == [1]
    r0, c0, r1, c1 = (float(v) for v in np.r_[boxes.data[0][:, 1:].min(0),
                                              boxes.data[0][:, 1:].max(0)])
    assert abs(r0 - 12) < 2 and abs(c1 - 46) < 2
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.prompt_frames(1) == [0]
    assert (c.labels_layer.data[0] == 1).any()
    assert "1" in [widget._table.item(r, 1).text() for r in range(widget._table.rowCount())]


def test_deleting_a_box_resegments_from_what_is_left(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    with_point = (c.labels_layer.data[0] == 1).copy()
    corners = np.array([[0, 2, 2], [0, 2, 10], [0, 10, 10], [0, 10, 2]], float)
    c.prompts.boxes.add_rectangles(corners)
    wait_idle(qtbot, c)
    with_box = (c.labels_layer.data[0] == 1).copy()
    assert not np.array_equal(with_box, with_point)  # the box changed it
    boxes = c.prompts.boxes
    boxes.selected_data = {0}
    boxes.remove_selected()  # the user deletes the box
    wait_idle(qtbot, c)
    assert "object 1:" in widget._status_label.text()  # re-segmented from the point alone
    assert not np.array_equal(c.labels_layer.data[0] == 1, with_box)
    assert c.prompts.box_for(c.current_ref(), 0, 1) is None


def test_delete_button_removes_selected_objects_everywhere(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    c.new_object()
    c.prompts.add_point((0, 5, 5), True)
    wait_idle(qtbot, c)
    table = widget._table
    row = [table.item(r, 1).text() for r in range(table.rowCount())].index("1")
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     pos=table.visualItemRect(table.item(row, 1)).center())
    assert table.selected_ids() == [1] and c.current_obj == 1
    qtbot.mouseClick(widget._delete_button, Qt.MouseButton.LeftButton)
    assert 1 not in c.objects and not (c.labels_layer.data == 1).any()
    assert c.prompts.points.features["obj_id"].tolist() == [2]
    assert [table.item(r, 1).text() for r in range(table.rowCount())] == ["2"]
    assert c.current_obj == 2  # the deleted object is no longer the one clicks go to
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    assert not (c.labels_layer.data == 1).any()


def test_painted_mask_with_the_brush_then_propagate(sam, qtbot):
    viewer, widget, c = sam
    labels = c.labels_layer
    c.new_object()
    obj = c.current_obj
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    labels.brush_size = 6
    for row in range(16, 33, 4):
        _drag(labels, c, (row, 22), (row, 42))
    assert (labels.data[0] == obj).sum() > 100  # the brush painted the selected object
    qtbot.mouseClick(widget._mask_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c)
    assert obj in c.objects
    assert f"objects [{obj}] use their painted masks" in widget._status_label.text()
    qtbot.mouseClick(widget._propagate_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c)
    assert all((labels.data[t] == obj).any() for t in range(6))


def test_track_all_labels_here_with_the_button(sam, qtbot):
    viewer, widget, c = sam
    labels = c.labels_layer
    labels.data[0, 14:34, 20:44] = 3
    labels.data[0, 2:8, 2:8] = 7
    labels.refresh()
    qtbot.mouseClick(widget._track_all_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c)
    assert c.objects >= {3, 7}
    ids = [widget._table.item(r, 1).text() for r in range(widget._table.rowCount())]
    assert {"3", "7"} <= set(ids)
    qtbot.mouseClick(widget._propagate_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c)
    assert (labels.data[5] == 3).any()
    assert c.new_object() >= 8  # numbering continues above the tracked labels
