"""Round trips of the OME-Zarr and TIFF labels writers, and what the files contain."""

import json

import numpy as np
import pytest

from napari_sam2.errors import RefusedOverwriteError
from napari_sam2.io import (
    find_label_image,
    is_our_tiff,
    read_labels_tiff,
    read_labels_zarr,
    write_labels_tiff,
    write_labels_zarr,
)


def _labels(shape, dtype=np.int32, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, dtype)
    lab[..., 3:9, 5:17] = 1
    lab[..., 10:14, 2:6] = 7
    lab.flat[rng.integers(0, lab.size, 20)] = 300 if np.iinfo(dtype).max > 300 else 3
    return lab


@pytest.mark.parametrize("shape", [(20, 24), (5, 20, 24), (3, 4, 20, 24)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint32])
def test_zarr_round_trip_identical(tmp_path, shape, dtype):
    lab = _labels(shape, dtype)
    ndim = len(shape)
    scale = tuple(0.5 + i for i in range(ndim))
    translate = tuple(-2.0 * i for i in range(ndim))
    out = write_labels_zarr(tmp_path / "a.zarr", lab, scale=scale, translate=translate, name="cells")
    back, meta, _ = read_labels_zarr(out)
    assert back.dtype == lab.dtype and back.shape == lab.shape
    np.testing.assert_array_equal(back, lab)
    assert meta.scale == scale and meta.translate == translate and meta.name == "cells"


def test_zarr_is_ngff_05_label_image(tmp_path):
    lab = _labels((6, 20, 24))
    path = write_labels_zarr(
        tmp_path / "t.zarr", lab, axis_labels=("t", "y", "x"), scale=(1, 0.3, 0.3),
        units=("second", "micrometer", "micrometer"), colors={1: (255, 0, 0, 255)},
        provenance={"model": "sam2_demo"},
    )
    root = json.loads((tmp_path / "t.zarr" / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    axes = ome["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "y", "x"]
    assert [a["type"] for a in axes] == ["time", "space", "space"]
    assert axes[1]["unit"] == "micrometer"
    assert ome["image-label"]["colors"] == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]
    arr_meta = json.loads((tmp_path / "t.zarr" / "0" / "zarr.json").read_text())
    assert arr_meta["dimension_names"] == ["t", "y", "x"]
    assert arr_meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 20, 24]
    _, meta, colors = read_labels_zarr(path)
    assert meta.provenance["model"] == "sam2_demo" and colors[1] == (255, 0, 0, 255)
    assert meta.axis_labels == ("t", "y", "x")


def test_zarr_non_ngff_axis_labels_are_kept_in_provenance(tmp_path):
    lab = _labels((2, 3, 20, 24))
    path = write_labels_zarr(tmp_path / "x.zarr", lab, axis_labels=("0", "1", "2", "3"))
    root = json.loads((tmp_path / "x.zarr" / "zarr.json").read_text())
    assert [a["name"] for a in root["attributes"]["ome"]["multiscales"][0]["axes"]] == list("tzyx")
    assert read_labels_zarr(path)[1].axis_labels == ("0", "1", "2", "3")


def test_zarr_reads_labels_inside_an_ome_zarr_image(tmp_path):
    """A standard image.zarr/labels/<name> layout (as ome-zarr-py writes it) is found."""
    import zarr

    image = tmp_path / "img.zarr"
    root = zarr.open_group(str(image), mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [], "datasets": [{"path": "0"}]}]}
    labels_group = root.create_group("labels")
    labels_group.attrs["ome"] = {"version": "0.5", "labels": ["nuclei"]}
    lab = _labels((20, 24))
    write_labels_zarr(image / "labels" / "nuclei", lab)
    assert find_label_image(image) == image / "labels" / "nuclei"
    np.testing.assert_array_equal(read_labels_zarr(image)[0], lab)


def test_zarr_bad_input(tmp_path):
    with pytest.raises(ValueError, match="integer dtype"):
        write_labels_zarr(tmp_path / "f.zarr", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="2 to 5 dimensions"):
        write_labels_zarr(tmp_path / "f.zarr", np.zeros((4,), np.int32))
    with pytest.raises(ValueError, match="scale needs 2 values"):
        write_labels_zarr(tmp_path / "f.zarr", np.zeros((4, 4), np.int32), scale=(1, 2, 3))
    (tmp_path / "plain").mkdir()
    assert find_label_image(tmp_path / "plain") is None
    with pytest.raises(ValueError, match="not an OME-Zarr"):
        read_labels_zarr(tmp_path / "plain")
    write_labels_zarr(tmp_path / "e.zarr", np.zeros((4, 4), np.int32))
    with pytest.raises(RefusedOverwriteError, match="overwrite=False"):
        write_labels_zarr(tmp_path / "e.zarr", np.zeros((4, 4), np.int32), overwrite=False)


@pytest.mark.parametrize("shape", [(20, 24), (1, 20, 24), (5, 20, 24), (3, 4, 20, 24)])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_tiff_round_trip_identical(tmp_path, shape, dtype):
    lab = _labels(shape, dtype)
    ndim = len(shape)
    scale = tuple(0.25 * (i + 1) for i in range(ndim))
    translate = tuple(3.0 * i for i in range(ndim))
    path = write_labels_tiff(tmp_path / "a.tif", lab, scale=scale, translate=translate, name="n")
    assert is_our_tiff(path)
    back, meta = read_labels_tiff(path)
    assert back.dtype == lab.dtype and back.shape == lab.shape
    np.testing.assert_array_equal(back, lab)
    assert meta.scale == scale and meta.translate == translate and meta.name == "n"


def test_tiff_is_ome_and_other_tiffs_are_not_ours(tmp_path):
    import tifffile

    lab = _labels((4, 20, 24))
    path = write_labels_tiff(tmp_path / "a.tif", lab, axis_labels=("t", "y", "x"), scale=(2, 0.5, 0.5))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX"
        assert tif.pages[0].software == "napari-sam2"
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, lab, photometric="minisblack")
    assert not is_our_tiff(other)
    assert not is_our_tiff(tmp_path / "missing.tif")
    back, _ = read_labels_tiff(other)
    np.testing.assert_array_equal(back, lab)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_tiff_64bit_labels_round_trip(tmp_path, dtype):
    """OME-TIFF has no 64-bit integers (napari's default labels dtype): stored as 32-bit, the
    dtype restored on reading; values that do not fit are refused before writing."""
    lab = _labels((3, 20, 24), dtype)
    back, _ = read_labels_tiff(write_labels_tiff(tmp_path / "a.tif", lab))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, lab)
    lab[0, 0, 0] = 2**40
    with pytest.raises(ValueError, match="do not fit the .*32 that OME-TIFF can store.*zarr"):
        write_labels_tiff(tmp_path / "b.tif", lab)
    assert not (tmp_path / "b.tif").exists()
