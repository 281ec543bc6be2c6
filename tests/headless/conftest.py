"""Fixtures of the headless tests: synthetic stacks on disk, the demo model, and the
single-process reference (the record replayed on an in-memory array through the widget's
paste rules, without streaming, dropping outputs or journals)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile

from napari_sam2.data.synthetic import make_cell_timelapse


@pytest.fixture(scope="session")
def demo_model():
    from napari_sam2.model import load_model

    return load_model("sam2_demo", device="cpu", progress=False)


@pytest.fixture(scope="session")
def short_memory_model():
    """The demo model with object pointers from 4 frames back (lookback 8 frames instead of
    17): outputs are dropped on a short stack, so the tests of that stay fast."""
    from napari_sam2.model import load_model

    model = load_model("sam2_demo", device="cpu", progress=False)
    model.config = dataclasses.replace(model.config, max_obj_ptrs_in_encoder=4)
    return model


def write_stack(folder, name: str, *, n_frames: int, seed: int, n_cells: int = 2,
                prompt_frame: int = 0, box_for_last: bool = True):
    """A synthetic (T, 48, 64) uint16 stack as ``name.tif`` and a prompts CSV ``name.csv``
    (a click at the centre of each cell on ``prompt_frame``; the last cell by a box instead).
    Returns (image path, csv path, image array, ground-truth labels)."""
    image, labels = make_cell_timelapse(n_frames=n_frames, shape=(48, 64), n_cells=n_cells,
                                        seed=seed)
    tif = folder / f"{name}.tif"
    tifffile.imwrite(tif, image, photometric="minisblack")
    plane = labels[prompt_frame]
    ids = [int(v) for v in np.unique(plane) if v > 0]
    rows = ["obj_id,frame,row,col,label,row0,col0,row1,col1"]
    for k, v in enumerate(ids):
        ys, xs = np.nonzero(plane == v)
        if box_for_last and k == len(ids) - 1 and k > 0:
            rows.append(f"{v},{prompt_frame},,,,{ys.min()},{xs.min()},{ys.max()},{xs.max()}")
        else:
            rows.append(f"{v},{prompt_frame},{ys.mean():.2f},{xs.mean():.2f},1,,,,")
    csv = folder / f"{name}.csv"
    csv.write_text("\n".join(rows) + "\n")
    return tif, csv, image, labels


def reference_labels(record, frames, model) -> np.ndarray:
    """(T, H, W) labels of ``record`` replayed in one process on an in-memory array: a fresh
    session and the widget's own ``replay_labels`` (no streaming, nothing dropped, no
    journal)."""
    from napari_sam2._napari._replay import replay_labels
    from napari_sam2._napari._stack import StackRef
    from napari_sam2.engine.session import TrackingSession

    session = TrackingSession(model, frames, intensity_range=record.intensity_range,
                              bfloat16=record.bfloat16)
    labels = np.zeros((session.num_frames, *session.frame_shape), np.uint32)
    replay_labels(record, session, labels, ref=StackRef(3, 0, ()))
    return labels
