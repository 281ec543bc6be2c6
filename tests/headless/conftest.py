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


class _Holder:
    def __init__(self, data):
        self.data = data

    def refresh(self):
        pass


def reference_labels(record, frames, model) -> np.ndarray:
    """(T, H, W) labels of ``record`` replayed in one process on an in-memory array: a fresh
    session, ``SessionRecord.replay``, each result pasted with ``LabelsWriter`` as the widget
    does (painted masks set by hand), one undo group per step."""
    from napari_sam2._napari._layers import LabelsWriter, UndoGroup
    from napari_sam2.engine.session import TrackingSession
    from napari_sam2.engine.session_record import MaskStep

    session = TrackingSession(model, frames, intensity_range=record.intensity_range,
                              bfloat16=record.bfloat16)
    n, h, w = session.num_frames, *session.frame_shape
    holder = _Holder(np.zeros((n, h, w), np.uint32))
    writer = LabelsWriter()
    group, current = None, None
    for index, result in record.replay(session):
        step = record.steps[index]
        if index != current:
            if group is not None:
                writer.undo_stack.push(group)
            group, current = UndoGroup(f"step {index}", target=holder), index
            if isinstance(step, MaskStep):
                holder.data[step.frame][step.mask] = step.obj_id
        for obj, mask in record.writes(index, result):
            writer.paste(group, (result.frame, slice(None), slice(None)), obj, mask)
    return holder.data
