"""The widget as a first-time user meets it (issue 23), in a real napari viewer."""

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from napari_sam2._napari._controller import visible_color
from napari_sam2._napari._prompts import BOXES_NAME, POINTS_NAME
from tests.napari.conftest import square_stack, wait_idle


@pytest.fixture
def bare(make_napari_viewer, demo_model, qtbot):
    """(viewer, widget, controller): the square stack, a model, and no Labels layer yet."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(square_stack(), name="img", contrast_limits=(400, 3200),
                     axis_labels=("t", "y", "x"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    return viewer, widget, c


def _names(viewer):
    return [layer.name for layer in viewer.layers]


def test_refused_actions_create_no_layer(bare):
    viewer, widget, c = bare
    before = _names(viewer)
    widget._propagate_button.click()  # no prompt yet
    assert _names(viewer) == before
    assert "nothing to propagate" in widget._status_label.text()
    widget._mask_button.click()  # no Labels layer to take a mask from
    assert _names(viewer) == before
    assert "no Labels layer" in widget._status_label.text()
    widget._track_all_button.click()
    assert _names(viewer) == before and c.labels_layer is None
    c.prompts.add_point((0, 60, 100), True)  # a click outside the image
    assert "outside the image" in widget._status_label.text()
    assert _names(viewer) == before and len(c.prompts.points.data) == 0


def test_each_image_keeps_its_own_prompts_objects_and_labels(bare, qtbot):
    viewer, widget, c = bare
    img = viewer.layers["img"]
    c.go_to_frame(2)
    c.prompts.add_point((2, 24, 35), True)
    wait_idle(qtbot, c)
    assert c.new_object() == 2
    labels_a = c.labels_layer
    volume = np.random.default_rng(1).normal(100, 10, (10, 40, 40)).astype(np.float32)
    viewer.add_image(volume, name="vol", scale=(2.0, 1.0, 1.0), axis_labels=("z", "y", "x"))
    widget._image_combo.setCurrentText("vol")
    assert c.image_layer == viewer.layers["vol"]
    # nothing of the first image is shown or used for the second one
    assert len(c.prompts.points.data) == 0 and c.objects == set()
    assert widget._table.rowCount() == 0 and c.labels_layer is None
    assert widget._axis_combo.currentText() == "z"
    assert c.new_object() == 1  # numbering starts afresh (in the new image's own labels)
    assert c.labels_layer is not labels_a and c.labels_layer.data.shape == (10, 40, 40)
    # a real click lands on the volume's plane, read in its geometry (z scale 2)
    c.go_to_frame(6)
    viewer.camera.center = (0, 20, 20)
    viewer.camera.zoom = 6
    qtbot.wait(50)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton,
                     pos=QPoint(canvas.width() // 2, canvas.height() // 2))
    wait_idle(qtbot, c)
    np.testing.assert_allclose(c.prompts.points.data, [(6, 20, 20)], atol=0.6)
    assert widget._table.rowCount() == 1
    # back to the first image: everything returns, and its session still propagates
    widget._image_combo.setCurrentText("img")
    assert c.image_layer == img and c.labels_layer == labels_a
    assert c.current_frame() == 2  # the frame shown when the user left this image
    assert c.objects == {1, 2} and c.current_obj == 2
    assert widget._table.rowCount() == 2
    np.testing.assert_allclose(c.prompts.points.data, [(2, 24, 35)])
    assert c.prompts.points.features["obj_id"].tolist() == [1]
    assert c.prompts.points.ndim == 3 and len(_names(viewer)) == len(set(_names(viewer)))
    assert c.propagate("forward")
    wait_idle(qtbot, c)
    assert (labels_a.data[5] == 1).any()


def test_prompt_layers_are_drawn_on_top(bare, qtbot):
    viewer, widget, c = bare
    viewer.add_image(square_stack(), name="later")  # added after the prompt layers
    widget._image_combo.setCurrentText("later")
    assert _names(viewer)[-2:] == [BOXES_NAME, POINTS_NAME]
    c.set_labels_layer(None)  # a new Labels layer goes below the prompts too
    assert _names(viewer)[-2:] == [BOXES_NAME, POINTS_NAME]
    viewer.add_image(square_stack(), name="even later")
    widget._image_combo.setCurrentText("img")
    assert _names(viewer)[-2:] == [BOXES_NAME, POINTS_NAME]


def test_view_returns_to_the_start_frame_after_both(bare, qtbot):
    viewer, widget, c = bare
    c.go_to_frame(3)
    c.prompts.add_point((3, 24, 38), True)
    wait_idle(qtbot, c)
    shown = []
    viewer.dims.events.current_step.connect(lambda e: shown.append(c.current_frame()))
    widget._direction_combo.setCurrentText("both")
    widget._propagate_button.click()
    wait_idle(qtbot, c)
    assert set(shown) == set(range(6))  # the view followed every frame...
    assert c.current_frame() == 3  # ...and came back to where the user started
    assert (c.labels_layer.data[[0, 5]] == 1).any(axis=(1, 2)).all()


def test_progress_text_reset_after_cancel_and_image_switch(bare, qtbot):
    viewer, widget, c = bare
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    def cancel_at_first(done, total, fps):
        if done == 1:
            c.cancel()

    c.progress.connect(cancel_at_first)
    widget._propagate_button.click()
    wait_idle(qtbot, c)
    assert "cancelled" in widget._status_label.text()
    assert widget._speed_label.text() == "" and widget._progress_bar.value() < 1
    c.progress.disconnect(cancel_at_first)
    widget._direction_combo.setCurrentText("both")
    widget._propagate_button.click()
    wait_idle(qtbot, c)
    bar = widget._progress_bar  # a finished run keeps its full bar and count...
    assert bar.value() == bar.maximum() >= 6
    assert widget._speed_label.text().startswith(f"{bar.value()}/{bar.value()} frames")
    viewer.add_image(square_stack(), name="other")
    widget._image_combo.setCurrentText("other")  # ...until another image is picked
    assert widget._speed_label.text() == ""


def test_axis_named_as_the_slider(make_napari_viewer, demo_model):
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(), name="plain")  # no axis labels: napari numbers them
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    assert widget._axis_combo.itemText(0) == viewer.dims.axis_labels[0]


def test_object_colours_visible_and_table_shows_them(bare, qtbot):
    viewer, widget, c = bare
    ids = [c.new_object() for _ in range(12)]
    layer = c.labels_layer
    assert all(visible_color(layer.get_color(i)) for i in ids)
    assert not visible_color((0.53, 0.56, 0.6, 1.0))  # napari's grey label 8 is skipped
    assert len(set(ids)) == 12 and ids == sorted(ids)
    table = widget._table
    assert table.minimumHeight() >= 6 * table.verticalHeader().defaultSectionSize()
    row = [table.item(r, 1).text() for r in range(table.rowCount())].index(str(ids[-1]))
    assert table.item(row, 1).isSelected()
    swatch = table.item(row, 0).icon().pixmap(8, 8).toImage().pixelColor(4, 4)
    expected = layer.get_color(ids[-1])
    assert abs(swatch.redF() - expected[0]) < 0.02 and abs(swatch.greenF() - expected[1]) < 0.02
    assert layer.selected_label == ids[-1]  # the brush follows the selection (as the help says)
    assert "Labels brush" in widget._keys_label.text()


def test_prompt_point_size_follows_image_size(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((900, 1200), np.uint8), name="big")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    assert widget.controller.prompts.points.current_size == 20
    viewer.add_image(np.zeros((48, 72), np.uint8), name="small")
    widget._image_combo.setCurrentText("small")
    assert widget.controller.prompts.points.current_size == 3


def test_plain_tiff_opens_with_napari_and_ours_as_labels(make_napari_viewer, tmp_path):
    """With the plugin installed (npe2 finds it through its entry point)."""
    import tifffile
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    plain = tmp_path / "cells.tif"
    tifffile.imwrite(plain, np.arange(64, dtype=np.uint16).reshape(8, 8))
    # plugin=None: as File > Open, the reader is chosen from the file name (and preferences)
    (layer,) = viewer.open(str(plain), plugin=None)  # no choice to make: napari's own reader
    assert layer._type_string == "image"
    viewer.layers.clear()
    labels = np.zeros((3, 8, 8), np.int32)
    labels[1, 2:5, 2:5] = 4
    viewer.add_labels(labels, name="cells SAM labels")
    (ours,) = viewer.layers.save(str(tmp_path / "saved.tif"), plugin="napari-sam2")
    assert ours.endswith("saved_labels.tif")  # named so that it reopens as labels
    viewer.layers.clear()
    # napari's reader also claims every .tif: for a labels TIFF it asks (the GUI shows its
    # choice dialog), unless the user made a choice it remembers
    with pytest.raises(MultipleReaderError):
        viewer.open(ours, plugin=None)
    settings = get_settings().plugins
    old = dict(settings.extension2reader)
    try:
        settings.extension2reader = {**old, "*labels.tif": "napari-sam2"}
        (back,) = viewer.open(ours, plugin=None)
    finally:
        settings.extension2reader = old
    assert back._type_string == "labels"
    np.testing.assert_array_equal(np.asarray(back.data), labels)
    # labels TIFFs of other software open as labels through the plugin too
    other = tmp_path / "cp_labels.tif"
    tifffile.imwrite(other, labels.astype(np.uint16), photometric="minisblack")
    (third,) = viewer.open(str(other), plugin="napari-sam2")
    assert third._type_string == "labels"


def test_switching_between_a_2d_image_and_a_stack(bare, qtbot):
    viewer, widget, c = bare
    c.prompts.add_point((1, 24, 35), True)
    wait_idle(qtbot, c)
    viewer.add_image(square_stack()[0], name="plane")  # 2-D: the prompt layers are remade
    widget._image_combo.setCurrentText("plane")
    assert c.prompts.points.ndim == 2 and len(c.prompts.points.data) == 0
    c.prompts.add_point((20, 30), True)
    wait_idle(qtbot, c)
    widget._image_combo.setCurrentText("img")
    assert c.prompts.points.ndim == 3
    np.testing.assert_allclose(c.prompts.points.data, [(1, 24, 35)])
    widget._image_combo.setCurrentText("plane")
    np.testing.assert_allclose(c.prompts.points.data, [(20, 30)])
    assert _names(viewer).count(POINTS_NAME) == 1 and _names(viewer).count(BOXES_NAME) == 1


def test_switching_image_while_propagating_leaves_the_new_view_alone(bare, qtbot):
    viewer, widget, c = bare
    c.prompts.add_point((0, 24, 32), True)
    wait_idle(qtbot, c)
    labels = c.labels_layer
    viewer.add_image(np.zeros((9, 30, 30), np.uint8), name="other")
    switched = []

    def switch(done, total, fps):
        if done == 1 and not switched:
            switched.append(True)
            widget._image_combo.setCurrentText("other")
            c.go_to_frame(7)

    c.progress.connect(switch)
    c.go_to_frame(0)  # adding 'other' moved the sliders
    widget._propagate_button.click()
    wait_idle(qtbot, c)
    assert switched and c.image_layer == viewer.layers["other"]
    assert c.current_frame() == 7  # the run on 'img' did not move the view of 'other'
    assert all((labels.data[t] == 1).any() for t in range(6))  # and it wrote all its frames
