"""The widget on 2-D RGB and 3-D+t images, and its messages for bad input (nothing lost)."""

import numpy as np

from tests.napari.conftest import assert_same_mask, square_stack, wait_idle


def _dock(viewer):
    return viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")[1]


def test_rgb_2d_image_is_a_one_frame_stack(make_napari_viewer, demo_model, qtbot):
    viewer = make_napari_viewer()
    rgb = np.zeros((40, 56, 3), np.uint8)
    rgb[10:30, 15:40] = (200, 180, 30)
    viewer.add_image(rgb, rgb=True, name="rgb")
    widget = _dock(viewer)
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    c.set_labels_layer(None)
    assert c.labels_layer.data.shape == (40, 56) and c.stack_axis is None and c.num_frames() == 1
    c.prompts.add_point((20, 28), True)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    clicked = session.result(0).mask_of(1)
    assert clicked.any()  # (seeded random weights: non-empty, not meaningful)
    np.testing.assert_array_equal(c.labels_layer.data == 1, clicked)
    assert c.propagate("both")  # a 2-D image propagates over its single frame
    wait_idle(qtbot, c)
    assert session.frames_with_output(1) == [0]
    assert "propagated 1 frames" in widget._status_label.text()
    assert_same_mask(c.labels_layer.data == 1, clicked)  # and it stays the clicked object


def test_3d_plus_t_tracks_along_the_chosen_axis_at_the_current_time(make_napari_viewer, demo_model, qtbot):
    viewer = make_napari_viewer()
    stack = square_stack(n_frames=4, shape=(32, 48))
    data = np.stack([stack, stack[::-1], stack])  # (t=3, z=4, y, x)
    viewer.add_image(data, name="tzyx", axis_labels=("t", "z", "y", "x"), contrast_limits=(400, 3200))
    widget = _dock(viewer)
    c = widget.controller
    assert c.stack_axis == 0 and c.axis_names() == ["t", "z"]
    widget._axis_combo.setCurrentIndex(1)  # track along z
    assert c.stack_axis == 1 and c.num_frames() == 4
    c.set_model(demo_model, "sam2_demo")
    c.set_labels_layer(None)
    assert c.labels_layer.data.shape == data.shape
    viewer.dims.set_point(0, 1)  # t = 1
    viewer.dims.set_point(1, 0)  # z = 0
    c.prompts.add_point((1, 0, 16, 24), True)
    wait_idle(qtbot, c)
    assert c.current_ref().fixed == ((0, 1),)
    assert c.propagate("forward")
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.num_frames == 4 and session.frames_with_output(1) == [0, 1, 2, 3]
    labels = c.labels_layer.data
    assert labels[[0, 2]].max() == 0  # other time points untouched
    for z in range(4):
        assert_same_mask(labels[1, z] == 1, session.result(z).mask_of(1))


def test_bad_input_gives_clear_messages_and_loses_nothing(make_napari_viewer, demo_model, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    c = widget.controller
    status = widget._status_label.text
    assert "Open an image" in status()
    c.propagate("forward")
    assert "no image layer" in status()

    viewer.add_image(np.zeros((2, 2, 2, 8, 8), np.uint8), name="five")
    widget._image_combo.setCurrentText("five")
    assert "2 to 4 dimensions" in status() and c.image_layer is None

    viewer.add_image(square_stack(), name="img", contrast_limits=(400, 3200))
    widget._image_combo.setCurrentText("img")
    assert c.image_layer is viewer.layers["img"]
    c.set_model(demo_model, "sam2_demo")
    c.set_labels_layer(None)
    good = c.labels_layer
    assert widget._labels_combo.currentText() == good.name
    good.data[0, :2, :2] = 3
    viewer.add_labels(np.zeros((6, 10, 10), np.int32), name="small")
    widget._labels_combo.setCurrentText("small")
    widget._labels_combo.activated.emit(widget._labels_combo.currentIndex())  # as a user pick
    assert "has shape (6, 10, 10)" in status() and c.labels_layer is good
    assert widget._labels_combo.currentText() == good.name  # still shows the layer in use

    c.prompts.add_point((0, 500, 5), True)
    assert "outside the image" in status() and len(c.prompts.points.data) == 0

    c.propagate("forward")
    assert "nothing to propagate" in status()

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all" * 100)
    widget._model_combo.setCurrentText("sam2_demo")
    widget._checkpoint_edit.setText(str(bad))
    widget._device_combo.setCurrentText("cpu")
    layers = list(viewer.layers)
    widget._load_button.click()
    wait_idle(qtbot, c)
    assert "broken.pt" in status() and "\n" not in status()  # one line, naming the file
    assert c.sessions.model is demo_model and good.data[0, 0, 0] == 3  # nothing lost
    assert list(viewer.layers) == layers and c.labels_layer is good


def test_clicks_need_the_yx_plane_shown(sam, qtbot):
    viewer, widget, c = sam
    viewer.dims.order = (1, 0, 2)  # show (t, x): not a plane SAM can segment
    c.prompts.add_point((0, 24, 32), True)
    assert "(y, x) plane" in widget._status_label.text() and len(c.prompts.points.data) == 0
    viewer.dims.order = (0, 1, 2)
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    assert len(c.prompts.points.data) == 1 and (c.labels_layer.data[0] == 1).any()


def test_lazy_float_stack(make_napari_viewer, demo_model, qtbot):
    """A dask float32 stack (lazy frames, contrast limits as the intensity range)."""
    import dask.array as da

    viewer = make_napari_viewer()
    data = da.from_array(square_stack(n_frames=4).astype(np.float32) / 1000.0, chunks=(1, 48, 72))
    viewer.add_image(data, name="lazy", contrast_limits=(0.4, 3.2))
    widget = _dock(viewer)
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    c.set_labels_layer(None)
    assert isinstance(c.labels_layer.data, np.ndarray) and c.labels_layer.data.shape == (4, 48, 72)
    c.go_to_frame(1)
    c.prompts.add_point((1, 24, 32), True)
    wait_idle(qtbot, c)
    assert c.propagate("both")
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.frames_with_output(1) == [0, 1, 2, 3]
    assert session.state.intensity_range == (0.4, 3.2)


def test_undo_key_and_closing_the_widget(sam, qtbot):
    viewer, widget, c = sam
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    assert (c.labels_layer.data == 1).any()
    from app_model.types import KeyBinding

    key = KeyBinding.from_str("Alt-Z")
    viewer.keymap[key](viewer)
    assert not (c.labels_layer.data == 1).any()
    widget.close()
    assert key not in viewer.keymap
    viewer.dims.set_point(0, 4)  # no callback into the closed widget
