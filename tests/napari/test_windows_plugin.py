"""The widget's window setting (issue 19) in a real viewer: a small cell in a large multiscale
field is segmented and tracked in a window read from the matching level (slow: 20-90 s; the
fast tests below check the setting's words and the lazy plane reads)."""

import numpy as np
import pytest

from napari_sam2._napari._windows import WINDOW_MODES, stack_levels, window_setting
from napari_sam2.data import LargeFieldTimelapse
from napari_sam2.engine.windows import Window
from napari_sam2.training.evaluate import interior_point
from tests.napari.conftest import iou, wait_idle


def test_window_setting_words():
    assert window_setting(WINDOW_MODES[0]) is None
    assert window_setting(WINDOW_MODES[1]) == "auto"
    assert window_setting(WINDOW_MODES[2], 300) == 300


def test_frame_stack_reads_only_the_window_of_a_plane():
    from napari_sam2._napari._stack import FrameStack, StackRef

    data = np.arange(3 * 4 * 20 * 30).reshape(3, 4, 20, 30)
    reads = []

    class Counting:
        shape, dtype, ndim = data.shape, data.dtype, data.ndim

        def __getitem__(self, key):
            out = data[key]
            reads.append(out.size)
            return out

    stack = FrameStack(Counting(), StackRef(4, 1, ((0, 2),)))  # frames along axis 1, t = 2
    crop = stack[(3, slice(5, 9), slice(10, 16))]
    assert np.array_equal(crop, data[2, 3, 5:9, 10:16]) and reads == [24]
    assert np.array_equal(stack[3], data[2, 3])
    rgb = FrameStack(np.zeros((2, 8, 9, 4)), StackRef(3, 0), rgb=True)
    assert rgb[(1, slice(0, 2), slice(0, 3))].shape == (2, 3, 3)


@pytest.mark.slow
def test_auto_window_in_the_widget_segments_and_tracks_a_small_cell(
        make_napari_viewer, trained_demo_model, qtbot):
    field = LargeFieldTimelapse(shape=(1024, 1024), n_frames=3, seed=8)
    stack = field[:]
    levels = [stack, stack[:, ::2, ::2], stack[:, ::4, ::4]]
    viewer = make_napari_viewer()
    layer = viewer.add_image(levels, multiscale=True, name="field",
                             contrast_limits=(300, 6000))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(trained_demo_model, "sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    widget._window_combo.setCurrentText(WINDOW_MODES[1])  # what the user picks
    assert c.sessions.window == "auto" and not widget._window_spin.isEnabled()
    k = 6
    box, gt = field.cell_mask(0, k)
    r, col = interior_point(gt)
    c.select_object(1)
    c.prompts.add_point((0, r + box[0], col + box[1]), True)
    wait_idle(qtbot, c)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.window == "auto"
    assert len(stack_levels(layer, c.current_ref())) == 2  # levels 1 and 2 reach the session
    keys = session.feature_cache.keys()
    assert keys and all(isinstance(key[1], Window) for key in keys)  # no whole frame encoded
    labels = c.labels_layer.data
    truth = [field.labels_region(t, slice(None), slice(None)) == k for t in range(3)]
    assert iou(labels[0] == 1, truth[0]) > 0.8
    c.propagate("forward")
    wait_idle(qtbot, c)
    for t in (1, 2):
        assert iou(labels[t] == 1, truth[t]) > 0.7, t
    # N px: a new session with windows of that side
    widget._window_combo.setCurrentText(WINDOW_MODES[2])
    assert widget._window_spin.isEnabled() and c.sessions.window == 256
    widget._window_combo.setCurrentText(WINDOW_MODES[0])
    assert c.sessions.window is None
    # whole frame on a multiscale image: one window of the whole frame, read from level 2
    session = c.sessions.get(c.image_layer, c.current_ref())
    assert session.window == 1024
    assert session.state.source.plane(0).level_for(Window.whole((1024, 1024)), 256) == 2
