"""Headless inputs without a model: lazy image files, stacks of n-D images, the prompts CSV,
the streamed label store's refusals."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_sam2.engine.session_record import BoxStep, PointsStep
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError
from napari_sam2.headless.inputs import open_array, open_image, stack_of
from napari_sam2.headless.prompts import prompt_steps_from_csv, seed_masks
from napari_sam2.io import read_labels_zarr, write_labels_zarr
from napari_sam2.io.label_stream import LabelStream, run_state


@pytest.fixture
def stack():
    return np.arange(4 * 2 * 6 * 5, dtype=np.uint16).reshape(4, 2, 6, 5)


def test_image_files_open_lazily_and_read_the_same(tmp_path, stack):
    tifffile.imwrite(tmp_path / "a.tif", stack, photometric="minisblack")
    np.save(tmp_path / "a.npy", stack)
    zarr.create_array(str(tmp_path / "a.zarr"), data=stack)
    image = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w", zarr_format=3, attributes={
        "ome": {"version": "0.5", "multiscales": [{"datasets": [{"path": "s0"}]}]}})
    image.create_array("s0", data=stack)
    for name in ("a.tif", "a.npy", "a.zarr", "ome.zarr"):
        array = open_image(tmp_path / name)
        assert not isinstance(array, np.ndarray) or isinstance(array, np.memmap), name
        frames = stack_of(array, 0, {1: 1})  # (T, C, Y, X): channel 1 along time
        assert frames.shape == (4, 6, 5)
        np.testing.assert_array_equal(frames[2], stack[2, 1])
    np.testing.assert_array_equal(stack_of(open_image(tmp_path / "a.npy"), 1, {0: 3})[1],
                                  stack[3, 1])


def test_image_file_errors(tmp_path, stack):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(DamagedFileError, match="bad.tif as an image"):
        open_image(tmp_path / "bad.tif")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type .png"):
        open_image(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError):
        open_image(tmp_path / "missing.tif")
    np.save(tmp_path / "plane.npy", stack[0, 0])
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        open_image(tmp_path / "plane.npy")
    assert open_array(tmp_path / "plane.npy").shape == (6, 5)
    with pytest.raises(ValueError, match="position 5 of axis 1 is out of range"):
        stack_of(stack, 0, {1: 5})
    with pytest.raises(ValueError, match="stack axis 2"):
        stack_of(stack, 2)
    write_labels_zarr(tmp_path / "labels.zarr", np.ones((2, 6, 5), np.uint8))
    with pytest.raises(ValueError, match="label image, not an image"):
        open_image(tmp_path / "labels.zarr")
    assert open_array(tmp_path / "labels.zarr", labels=True).shape == (2, 6, 5)


def test_prompts_csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("obj_id,frame,row,col,label,row0,col0,row1,col1\n"
                   "2,3,,,,1,2,10,12\n"
                   "1,0,5,6,1,,,,\n"
                   "1,0,7.5,8,0,,,,\n"
                   "2,3,4,5,,,,,\n")
    steps = prompt_steps_from_csv(csv)
    assert steps == [BoxStep(3, 2, (1, 2, 10, 12), ((4, 5),), (1,)),
                     PointsStep(0, 1, ((5, 6), (7.5, 8)), (1, 0))]
    cases = {
        "obj_id,frame,x,y\n1,0,1,2\n": "needs obj_id, frame",
        "obj_id,frame,row,col\n1,0,1,\n": "line 2: col must be a number",
        "obj_id,frame,row,col\n0,0,1,2\n": "line 2: obj_id must be >= 1",
        "obj_id,frame,row,col,label\n1,0,1,2,3\n": "line 2: label must be 1",
        "obj_id,frame,row,col,row0,col0,row1,col1\n1,0,1,2,1,2,3,4\n": "either a click",
        "obj_id,frame,row0,col0,row1,col1\n1,0,1,2,3,4\n1,0,1,2,3,4\n": "a second box",
        "obj_id,frame,row,col\n": "has no rows",
        "obj_id,frame,row,col\n1.5,0,1,2\n": "obj_id must be a whole number",
    }
    for text, message in cases.items():
        csv.write_text(text)
        with pytest.raises(ValueError, match=message):
            prompt_steps_from_csv(csv)


def test_seed_masks():
    plane = np.zeros((6, 5), np.uint16)
    plane[1:3, 1:3] = 4
    plane[4, 4] = 9
    masks = seed_masks(plane)
    assert [v for v, _ in masks] == [4, 9] and masks[0][1].sum() == 4
    with pytest.raises(ValueError, match="hold no object"):
        seed_masks(np.zeros((6, 5), np.uint8))
    with pytest.raises(ValueError, match="must be integers"):
        seed_masks(plane.astype(float))


def test_label_stream_refusals_and_resume_key(tmp_path):
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep me")
    with pytest.raises(RefusedOverwriteError, match="folder of other files"):
        LabelStream.create(foreign, (3, 6, 5), key="k")
    assert (foreign / "data.txt").read_text() == "keep me"
    out = tmp_path / "out.zarr"
    stream = LabelStream.create(out, (3, 6, 5), key="k1")
    stream.write(1, np.full((6, 5), 7))
    assert run_state(out) == {"complete": False, "key": "k1", "shape": [3, 6, 5]}
    labels, _, _ = read_labels_zarr(out)  # readable while unfinished
    assert labels[1].max() == 7 and labels[0].max() == 0
    with pytest.raises(RefusedOverwriteError, match="other prompts"):
        LabelStream.reopen(out, key="k2")
    again = LabelStream.reopen(out, key="k1")
    assert again.read(1).max() == 7
    again.finish()
    assert run_state(out)["complete"] is True
    write_labels_zarr(tmp_path / "plain.zarr", np.ones((2, 6, 5), np.uint8))
    with pytest.raises(RefusedOverwriteError, match="no run record"):
        LabelStream.reopen(tmp_path / "plain.zarr", key="k1")


def test_label_stream_into_an_ome_zarr_image(tmp_path, stack):
    image = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=3, attributes={
        "ome": {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}]}]}})
    image.create_array("0", data=stack[:, 0])
    stream = LabelStream.create(tmp_path / "img.zarr", (4, 6, 5), key="k", name="cells 1")
    assert stream.target == tmp_path / "img.zarr" / "labels" / "cells_1"
    stream.write(3, np.full((6, 5), 2))
    stream.finish()
    labels, meta, _ = read_labels_zarr(tmp_path / "img.zarr")  # the image's first labels
    assert labels.shape == (4, 6, 5) and labels[3].max() == 2 and meta.name == "cells 1"
    np.testing.assert_array_equal(np.asarray(zarr.open_array(str(tmp_path / "img.zarr" / "0"))),
                                  stack[:, 0])  # the image is untouched
