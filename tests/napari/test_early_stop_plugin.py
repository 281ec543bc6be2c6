"""The plugin's "stop after N empty frames" option: from the widget (on by default along z,
off along t) through the controller and ``Tracker`` to ``TrackingSession.propagate``."""

import numpy as np

from napari_sam2._napari._stack import stack_ref
from napari_sam2.data.synthetic import make_ellipsoid_volume
from tests.napari.conftest import assert_same_mask, wait_idle
from tests.napari.test_controller_headless import ImageArray, LabelsArray, _parts


def _volume():
    """(40, 96, 96) volume; ellipsoid 2 spans slices 5-26, the stack goes on to 39."""
    vol, truth = make_ellipsoid_volume(shape=(40, 96, 96), n_objects=3, seed=1)
    z = int((truth == 2).sum((1, 2)).argmax())
    rows, cols = np.nonzero(truth[z] == 2)
    return vol, truth, z, (int(np.median(rows)), int(np.median(cols)))


def test_the_option_reaches_the_session_and_the_run_ends_early(trained_demo_model):
    from napari_sam2.engine import TrackingSession

    vol, truth, z, point = _volume()
    lo, hi = float(vol.min()), float(vol.max())
    image, labels = ImageArray(vol, (lo, hi)), LabelsArray(vol.shape)
    log = {"say": [], "error": [], "progress": [], "written": []}
    clicks, tracker, jobs, sessions, writer = _parts(trained_demo_model, log)
    ref = stack_ref(vol.shape, 0, (z, 0, 0))
    clicks.segment(image, labels, ref, z, 2, [point], [1])

    # what the engine does with and without the option, on the same inputs
    runs = {}
    for n in (None, 3):
        reference = TrackingSession(trained_demo_model, vol, intensity_range=(lo, hi))
        reference.add_points(z, 2, [point], [1])
        runs[n] = {r.frame: r for r in reference.propagate(z, stop_after_absent=n)}
    assert len(runs[3]) < len(runs[None]) == 40 - z  # the option saves frames here
    last = max(runs[3])

    assert tracker.propagate(image, labels, ref, start=z, n_frames=40, stop_after_absent=3)
    assert log["error"] == []
    assert [p[0] for p in log["progress"]][-1] == len(runs[3])  # frames written
    assert log["say"][-1].startswith(f"propagated {len(runs[3])} frames")
    assert "objects ended before the range did (not found on 3 frames in a row)" in log["say"][-1]
    for f, result in runs[3].items():
        assert_same_mask(labels.data[f] == 2, result.mask_of(2))
    assert labels.data[last + 1:].max() == 0  # nothing written past the stop
    assert sessions.get(image, ref, create=False).frames_with_output(2) == list(range(z, last + 1))

    # a refused value: one line, nothing runs
    assert tracker.plan(image, ref, start=z, n_frames=40, stop_after_absent=0) is None
    assert log["error"][-1] == ("stop after 0 empty frames: use a whole number >= 1, or None "
                                "(never stop)")


def test_the_widget_stops_along_z_by_default_and_not_along_t(make_napari_viewer, demo_model,
                                                             qtbot):
    viewer = make_napari_viewer()
    vol = _volume()[0]
    viewer.add_image(vol[:, :48, :48], name="vol", axis_labels=("z", "y", "x"))
    viewer.add_image(vol[:6], name="movie", axis_labels=("t", "y", "x"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    widget._image_combo.setCurrentText("vol")  # read from the layer's own axis labels
    assert widget._stop_spin.value() == 3 and c.default_stop_after_absent() == 3
    widget._image_combo.setCurrentText("movie")
    assert widget._stop_spin.value() == 0 and widget._stop_spin.text() == "never"
    assert c.default_stop_after_absent() is None

    widget._image_combo.setCurrentText("vol")
    c.go_to_frame(4)
    c.prompts.add_point((4, 20, 20), True)
    wait_idle(qtbot, c)
    widget._stop_spin.setValue(2)
    widget._propagate_button.click()
    assert c.tracker.run.plan.stop_after_absent == 2  # what the spin box says
    wait_idle(qtbot, c)
    widget._stop_spin.setValue(0)  # "never": the plain run
    widget._propagate_button.click()
    assert c.tracker.run.plan.stop_after_absent is None
    wait_idle(qtbot, c)
