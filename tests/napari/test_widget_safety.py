"""Errors and layer removal in the widget: one line for the user, and nothing else changes.

Every expected error (a damaged checkpoint, a missing file, ...) shows the same line in the
status label and as one napari notification, and changes no layer and no model. Removing the
image or Labels layer while a propagation streams stops it with one message; the frames
already written stay.
"""

import numpy as np
import pytest

from tests.napari.conftest import clicked_cell_viewer, iou, wait_idle


@pytest.fixture
def notes():
    """Every napari notification shown during the test (errors, warnings, infos)."""
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def _errors(notes):
    from napari.utils.notifications import NotificationSeverity

    return [str(n.message) for n in notes if n.severity >= NotificationSeverity.WARNING]


def _dock(viewer):
    return viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")[1]


def _torch_save(obj, path):
    import torch

    torch.save(obj, path)
    return path


BAD_CHECKPOINTS = {
    "text named .pt": lambda d: (
        (d / "notes.pt").write_text("hello\nthis is text\n") and d / "notes.pt"),
    "empty file": lambda d: (d / "empty.pt").write_bytes(b"") or d / "empty.pt",
    "missing file": lambda d: d / "nowhere.pt",
    "a folder": lambda d: (d / "folder.pt").mkdir() or d / "folder.pt",
    "random bytes .safetensors": lambda d: (
        (d / "noise.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
        and d / "noise.safetensors"),
    "a dict without weights": lambda d: _torch_save({"epoch": 3}, d / "nodict.pt"),
}


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_is_one_line_and_changes_nothing(
    kind, make_napari_viewer, qtbot, tmp_path, notes
):
    from tests.napari.conftest import square_stack

    path = BAD_CHECKPOINTS[kind](tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(), name="img", contrast_limits=(400, 3200))
    widget = _dock(viewer)
    c = widget.controller
    layers_before = [(layer.name, type(layer).__name__) for layer in viewer.layers]
    widget._model_combo.setCurrentText("sam2_demo")
    widget._checkpoint_edit.setText(str(path))
    widget._device_combo.setCurrentText("cpu")
    widget._load_button.click()
    wait_idle(qtbot, c)
    status = widget._status_label.text()
    print(f"{kind}: {status}")
    assert path.name in status and "\n" not in status
    assert _errors(notes) == [f"SAM 2: {status}"]  # the same line, once
    assert c.sessions.model is None and c.model_name is None
    assert [(layer.name, type(layer).__name__) for layer in viewer.layers] == layers_before
    assert widget._load_button.isEnabled()  # ready for the next try


N_FRAMES = 16


@pytest.fixture
def propagating(make_napari_viewer, trained_demo_model, qtbot):
    """A propagation started with the widget's button on a 16-frame cell time-lapse, caught
    after it wrote its first frames: (viewer, widget, cell (T,H,W) true mask, labels layer)."""
    viewer = make_napari_viewer()
    widget, _, cell, _, _ = clicked_cell_viewer(
        viewer, qtbot, trained_demo_model, n_frames=N_FRAMES, seed=0
    )
    c = widget.controller
    widget._direction_combo.setCurrentText("forward")
    widget._propagate_button.click()
    qtbot.waitUntil(lambda: c.tracker.run and c.tracker.run.done >= 3, timeout=120_000)
    return viewer, widget, cell, c.labels_layer


def _frames_with(labels, obj=1):
    return [t for t in range(N_FRAMES) if (labels.data[t] == obj).any()]


def test_removing_the_image_mid_propagation_stops_once_and_keeps_the_labels(
    propagating, qtbot, notes
):
    viewer, widget, cell, labels = propagating
    c = widget.controller
    written_before = labels.data.copy()
    viewer.layers.remove("cells")
    wait_idle(qtbot, c)
    errors = _errors(notes)
    assert len(errors) == 1, errors
    assert "propagation stopped: the image layer 'cells' was removed" in errors[0]
    assert errors[0] == f"SAM 2: {widget._status_label.text()}"
    assert labels in viewer.layers
    done = _frames_with(labels)
    assert 3 <= len(done) < N_FRAMES and done == list(range(len(done)))  # stopped within a frame
    np.testing.assert_array_equal(labels.data, written_before)  # what was written stays
    for t in done:  # and is the clicked cell, frame by frame
        assert iou(labels.data[t] == 1, cell[t]) > 0.8, t
    assert f"the {len(done)} frames written stay" in errors[0]
    assert c.image_layer is None and c.sessions.all() == []  # its features are released
    c.undo()  # the frames written before the stop are one undoable step
    assert labels.data[1:].max() == 0 and (labels.data[0] == 1).any()


def test_removing_the_labels_mid_propagation_stops_once(propagating, qtbot, notes):
    viewer, widget, cell, labels = propagating
    c = widget.controller
    viewer.layers.remove(labels)
    wait_idle(qtbot, c)
    errors = _errors(notes)
    assert errors == [f"SAM 2: propagation stopped: the Labels layer '{labels.name}' was removed"]
    assert widget._status_label.text() == errors[0][len("SAM 2: "):]
    assert c.labels_layer is None and c.image_layer is viewer.layers["cells"]
    assert 3 <= len(_frames_with(labels)) < N_FRAMES
    # the widget goes on: the next click makes a new Labels layer and writes the cell there
    c.prompts.add_point((0, *np.argwhere(cell[0]).mean(0).round()), True)
    wait_idle(qtbot, c)
    assert c.labels_layer is not None and c.labels_layer is not labels
    assert iou(c.labels_layer.data[0] == 1, cell[0]) > 0.8


def test_a_refused_image_is_said_once(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    viewer.add_image(np.zeros((2, 2, 2, 8, 8), np.uint8), name="five")
    viewer.add_image(np.zeros((8, 8, 4), np.uint8), name="rgba", rgb=True)  # more layers come
    viewer.add_labels(np.zeros((8, 8), np.int32), name="paint")
    assert [e for e in _errors(notes) if "5 non-channel dimensions" in e] == [
        "SAM 2: the image has 5 non-channel dimensions (2, 2, 2, 8, 8); SAM 2 works on 2-D, "
        "2-D+t, 3-D and 3-D+t images (2 to 4 dimensions). Split other axes into separate "
        "layers (e.g. open channels with channel_axis) or slice the data first."]
    assert widget.controller.image_layer is None
    widget._image_combo.setCurrentText("rgba")  # an RGBA image is a 2-D image
    assert widget.controller.image_layer == viewer.layers["rgba"]
    assert widget.controller.num_frames() == 1 and len(_errors(notes)) == 1


def test_bad_frame_ranges_and_empty_frames_are_said_and_change_nothing(sam, qtbot, notes):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    before = c.labels_layer.data.copy()
    said = []
    c.go_to_frame(3)
    assert not c.propagate("forward", frame_range=(4, 1))
    said.append(widget._status_label.text())
    c.go_to_frame(5)
    assert not c.propagate("backward", frame_range=(0, 2))
    said.append(widget._status_label.text())
    c.mask_as_prompt("all")
    said.append(widget._status_label.text())
    c.mask_as_prompt()
    said.append(widget._status_label.text())
    wait_idle(qtbot, c)
    assert said == [
        "the frame range 4-1 is empty: the first frame must not come after the last",
        "propagation starts from the shown frame 5, which is outside the range 0-2: show a "
        "frame in the range or change the range",
        "no labels on frame 5: paint objects (or add a segmentation as a Labels layer and pick "
        "it) first",
        "no labelled pixels of 1 on frame 5: paint the object first",
    ]
    assert _errors(notes) == [f"SAM 2: {line}" for line in said]  # each once, as a notification
    np.testing.assert_array_equal(c.labels_layer.data, before)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.frames_with_output(1) == [0]
