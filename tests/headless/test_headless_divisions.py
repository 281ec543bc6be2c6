"""``track --record`` of a record whose last propagation finds divisions: not streamed (frames
come again), replayed with the widget's paste rules, equal to the in-memory replay."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import tifffile
from tests.headless.conftest import reference_labels

from napari_sam2.data import make_dividing_timelapse
from napari_sam2.engine.division import DivisionRule
from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.session_record import PointsStep, PropagateStep, SessionRecord
from napari_sam2.headless.inputs import open_image, stack_of
from napari_sam2.headless.runner import TrackOutput, track
from napari_sam2.io import read_labels_zarr


def _movie(folder, n_frames):
    """One cell dividing on frame 8 as ``cells.tif``: (path, images, truth, click on frame 0
    at the cell's centre)."""
    images, truth, _ = make_dividing_timelapse(n_frames=n_frames, shape=(64, 96), n_cells=1,
                                               n_dividing=1, seed=0)
    tif = folder / "cells.tif"
    tifffile.imwrite(tif, images, photometric="minisblack")
    rows, cols = np.nonzero(truth[0] == 1)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return tif, images, truth, (rows[i], cols[i])


def test_track_record_with_divisions_equals_replay(tmp_path, demo_model):
    tif, images, truth, click = _movie(tmp_path, 16)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    record = SessionRecord(
        steps=[PointsStep(0, 1, (click,), (1,)),
               PropagateStep(start=0, divisions=asdict(DivisionRule()))],
        model="sam2_demo", image_shape=images.shape, intensity_range=(lo, hi))
    expected = reference_labels(record, images, demo_model)
    assert set(np.unique(expected[-1])) == {0, 2, 3}  # the division was found

    session = TrackingSession(demo_model, stack_of(open_image(tif)),
                              intensity_range=record.intensity_range)
    summary = track(record, session, TrackOutput(tmp_path / "out.zarr"))
    labels, meta, _ = read_labels_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(labels, expected)
    assert summary["frames"] > 16  # replayed, not streamed: frames came again
    assert session.lineage.divisions() == [(1, 8, [2, 3])]
    assert meta.provenance["session_records"]["records"] == [record.to_dict()]


def test_track_record_with_a_division_by_hand_equals_replay(tmp_path, demo_model):
    """A widget record with a division marked by hand (the parent's planes from the division
    frame on are cleared in the output store, the daughters written), then a streamed run."""
    from napari_sam2.engine.session_record import DivideStep

    tif, images, truth, click = _movie(tmp_path, 14)
    split = 8
    record = SessionRecord(
        steps=[PointsStep(0, 1, (click,), (1,)), PropagateStep(start=0),
               DivideStep(split, 1, {2: truth[split] == 2, 3: truth[split] == 3}),
               PropagateStep(start=split)],
        model="sam2_demo", image_shape=images.shape)
    expected = reference_labels(record, images, demo_model)
    assert not (expected[split:] == 1).any() and (expected[:split] == 1).any(axis=(1, 2)).all()
    assert all({2, 3} <= set(np.unique(expected[t])) for t in range(split, 14))

    session = TrackingSession(demo_model, stack_of(open_image(tif)))
    summary = track(record, session, TrackOutput(tmp_path / "out.zarr"))
    labels, _, _ = read_labels_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(labels, expected)
    assert summary["frames"] == 14 - split  # the last run streamed
    assert session.lineage.parents() == {2: 1, 3: 1}
