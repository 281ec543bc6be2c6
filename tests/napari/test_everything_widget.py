"""Segment everything in a real viewer: find the cells of a frame, track them all, edit one
object, and nothing else changes (issue 21)."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_sam2.data.synthetic import make_cell_timelapse

from tests.napari.conftest import iou, wait_idle


@pytest.fixture
def cells(make_napari_viewer, trained_demo_model, qtbot):
    """(viewer, widget, controller, truth (T, H, W)) on a 4-frame synthetic cell time-lapse,
    the shipped sam2_demo loaded, a Labels layer holding one hand-painted label (id 40) in a
    corner of frame 0."""
    images, truth = make_cell_timelapse(n_frames=4, seed=21)
    viewer = make_napari_viewer(show=True)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(trained_demo_model, "sam2_demo")
    c.set_labels_layer(None)
    c.labels_layer.data[0, :6, :6] = 40  # the user's own label: must survive
    c.labels_layer.refresh()
    c.go_to_frame(0)
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    return viewer, widget, c, truth


def _press(qtbot, c, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c, timeout=120_000)


def test_segment_everything_track_all_then_edit_one(cells, qtbot):
    viewer, widget, c, truth = cells
    labels = c.labels_layer
    group = widget._everything
    group.points_spin.setValue(16)
    _press(qtbot, c, group.segment_button)
    frame0 = np.array(labels.data[0])
    assert (frame0[:6, :6] == 40).all()  # the hand-painted label is untouched
    new = sorted(set(np.unique(frame0).tolist()) - {0, 40})
    assert new and min(new) > 40  # new ids above the existing ones
    assert not labels.data[1:].any()  # only the shown frame
    cells0 = [k for k in np.unique(truth[0]) if k and (truth[0] == k).sum() >= 50]
    found = [k for k in cells0 if max(iou(frame0 == n, truth[0] == k) for n in new) > 0.5]
    assert len(found) >= len(cells0) - 1, (found, cells0)
    assert "objects found on frame 0" in widget._status_label.text()
    assert group.segment_button.isEnabled() and not group.cancel_button.isEnabled()

    # one undo step takes it all back; running it again finds the same objects (under new
    # ids: the undone ones stay reserved)
    c.undo()
    assert (np.array(labels.data[0]) == np.where(frame0 == 40, 40, 0)).all()
    _press(qtbot, c, group.segment_button)
    again = np.array(labels.data[0])
    assert ((again > 0) == (frame0 > 0)).all()
    assert len(np.unique(again)) == len(np.unique(frame0))
    frame0 = again
    new = sorted(set(np.unique(frame0).tolist()) - {0, 40})

    qtbot.mouseClick(widget._track_all_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c)
    assert c.objects >= set(new)
    qtbot.mouseClick(widget._propagate_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, c, timeout=120_000)
    tracked = np.array(labels.data)
    for t in range(1, 4):
        assert len(set(np.unique(tracked[t]).tolist()) & set(new)) >= len(new) - 1

    # edit one object on frame 2 with a negative click on it: only its own pixels change
    obj = max(new, key=lambda k: (tracked[2] == k).sum())  # the largest there
    c.go_to_frame(2)
    c.select_object(obj)
    rows, cols = np.nonzero(tracked[2] == obj)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    c.prompts.add_point((2, rows[i], cols[i]), False)
    wait_idle(qtbot, c)
    after = np.array(labels.data)
    changed = after != tracked
    assert changed.any()  # the edit did something
    assert ((tracked[changed] == obj) | (after[changed] == obj)).all()  # only that object
    assert (after[[0, 1, 3]] == tracked[[0, 1, 3]]).all()  # on that frame only


def test_segment_and_track_in_one_click_and_cancel(cells, qtbot):
    viewer, widget, c, _ = cells
    widget._everything.points_spin.setValue(12)
    _press(qtbot, c, widget._everything.track_button)
    labels, group = c.labels_layer, widget._everything
    ids = sorted(set(np.unique(labels.data[0]).tolist()) - {0, 40})
    assert ids
    assert all(set(ids) & set(np.unique(labels.data[t]).tolist()) for t in range(1, 4))
    assert (labels.data[0, :6, :6] == 40).all()

    # a cancelled run writes nothing
    before = np.array(labels.data)
    c.go_to_frame(3)
    group.replace_check.setChecked(True)
    assert c.segment_everything(group.options(), replace=True)
    c.cancel()
    wait_idle(qtbot, c, timeout=120_000)
    assert (np.array(labels.data) == before).all()
    assert "cancelled" in widget._status_label.text()
