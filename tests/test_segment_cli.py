"""``napari-sam2 segment``: segment everything on one frame of a file and save the labels."""

import numpy as np
import pytest
import tifffile

from napari_sam2.cli import main
from napari_sam2.data import make_cell_timelapse
from napari_sam2.io import read_labels_tiff, read_labels_zarr
from napari_sam2.training.evaluate import jaccard

FAST = ["--variant", "sam2_demo", "--device", "cpu", "--points-per-side", "12"]


@pytest.fixture
def movie(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, labels = make_cell_timelapse(n_frames=3, seed=7)
    tifffile.imwrite(tmp_path / "movie.tif", images, photometric="minisblack")
    return images, labels


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_segment_writes_tiff_and_zarr_of_the_frame(movie, capsys):
    images, truth = movie
    assert _run(["segment", "movie.tif", "--frame", "2", "-o", "seeds.tif", *FAST]) == 0
    out = capsys.readouterr().out
    assert "objects on frame 2 of movie.tif -> seeds.tif" in out
    labels, meta = read_labels_tiff("seeds.tif")
    assert labels.shape == truth.shape[1:]
    ids = [k for k in np.unique(labels) if k]
    assert ids
    cells = [k for k in np.unique(truth[2]) if k and (truth[2] == k).sum() >= 50]
    found = [k for k in cells if max(jaccard(labels == i, truth[2] == k) for i in ids) > 0.5]
    assert len(found) >= len(cells) - 2
    prov = meta.provenance
    assert prov["frame"] == 2 and prov["model"] == "sam2_demo"
    assert prov["options"]["points_per_side"] == 12
    assert set(prov["objects"]) == {str(k) for k in ids}

    # rerun over its own file: replaced; the same labels to OME-Zarr
    assert _run(["segment", "movie.tif", "--frame", "2", "-o", "seeds.tif", *FAST]) == 0
    assert _run(["segment", "movie.tif", "--frame", "2", "-o", "seeds.zarr", *FAST]) == 0
    back, _, _ = read_labels_zarr("seeds.zarr")
    assert np.array_equal(back, labels)


def test_segment_refuses_to_overwrite_a_foreign_file(movie, capsys, tmp_path):
    tifffile.imwrite(tmp_path / "mine.tif", np.ones((4, 4), np.uint8))
    before = (tmp_path / "mine.tif").read_bytes()
    code = _run(["segment", "movie.tif", "-o", "mine.tif", *FAST])
    err = capsys.readouterr().err
    assert code != 0 and "mine.tif" in err and "Traceback" not in err
    assert (tmp_path / "mine.tif").read_bytes() == before


@pytest.mark.parametrize("argv, fragment", [
    (["--frame", "9"], "--frame 9 is outside movie.tif"),
    (["--iou-threshold", "1.5"], "iou_threshold=1.5"),
    (["--points-per-side", "0"], "points_per_side=0"),
    (["-o", "seeds.png"], "give a name ending in .tif"),
])
def test_segment_bad_options_are_one_line(movie, capsys, argv, fragment):
    base = ["segment", "movie.tif", *FAST]
    if "-o" not in argv:
        base += ["-o", "seeds.tif"]
    code = _run(base + argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("napari-sam2 segment: error:") and fragment in err[0], err[0]
