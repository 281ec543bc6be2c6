"""With the trained sam2_demo model: a click inside a cell gives that cell, and tracking
follows it. Runs as soon as the trained weights ship in the package (issue 5)."""

import numpy as np
import pytest

from tests.napari.conftest import wait_idle


def _shipped() -> bool:
    from napari_sam2.model.loading import shipped_weights_path

    return shipped_weights_path("sam2_demo").is_file()


pytestmark = pytest.mark.skipif(not _shipped(), reason="trained sam2_demo weights not shipped yet")


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_click_inside_a_cell_gives_that_cell_and_tracking_follows(make_napari_viewer, demo_model, qtbot):
    from napari_sam2.data.synthetic import make_cell_timelapse

    assert demo_model.trained
    images, truth = make_cell_timelapse(n_frames=6, seed=3)
    viewer = make_napari_viewer()
    lo, hi = np.percentile(images, (0.5, 99.8))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi),
                     scale=(1, 0.7, 0.7), translate=(0, 5, -8))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(demo_model, "sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    cell = int(np.bincount(truth[0].ravel())[1:].argmax()) + 1  # the largest cell
    rows, cols = np.nonzero(truth[0] == cell)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    c.prompts.add_point((0, rows[i], cols[i]), True)
    wait_idle(qtbot, c)
    labels = c.labels_layer.data
    assert _iou(labels[0] == 1, truth[0] == cell) > 0.6
    c.propagate("forward")
    wait_idle(qtbot, c)
    ious = [_iou(labels[t] == 1, truth[t] == cell) for t in range(6)]
    assert np.mean(ious) > 0.5, ious
