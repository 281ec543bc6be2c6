"""``napari-sam2 track`` on the record the widget saved gives the widget's labels exactly."""

import numpy as np
import pytest
import tifffile

from napari_sam2._napari._writer import write_zarr
from napari_sam2.cli import main
from napari_sam2.io import read_labels_zarr
from tests.napari.conftest import square_stack, wait_idle
from tests.napari.test_session_record_widget import _work


@pytest.fixture
def sam_trained(make_napari_viewer, trained_demo_model, qtbot):
    """As ``sam``, with the shipped weights that ``track`` loads for "sam2_demo"."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(
        square_stack(), name="img", scale=(1.0, 0.5, 2.0), translate=(3.0, 10.0, -5.0),
        contrast_limits=(400, 3200), axis_labels=("t", "y", "x"),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(trained_demo_model, "sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    return viewer, widget, c


@pytest.mark.slow  # ~35 s on 2 busy cores (viewer, widget work, replay)
def test_track_on_the_widgets_saved_record_gives_its_labels(sam_trained, qtbot, tmp_path,
                                                            capsys):
    viewer, widget, c = sam_trained
    _work(c, qtbot)  # clicks, box, contrast, propagations, correction, mask, delete, undo
    assert c.propagate("forward")  # the record ends with a propagation: track streams it
    wait_idle(qtbot, c)
    labels = np.array(c.labels_layer.data)
    assert set(np.unique(labels)) >= {0, 1}
    (saved,) = write_zarr(str(tmp_path / "cells_labels.zarr"), c.labels_layer.data,
                          c.labels_layer.as_layer_data_tuple()[1])
    tifffile.imwrite(tmp_path / "cells.tif", square_stack(), photometric="minisblack")
    out = tmp_path / "replayed.zarr"
    assert main(["track", str(tmp_path / "cells.tif"), "--record", saved, "-o", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err  # the record's checkpoint was used
    replayed, meta, _ = read_labels_zarr(out)
    np.testing.assert_array_equal(replayed, labels)
    assert meta.scale == (1.0, 0.5, 2.0)
