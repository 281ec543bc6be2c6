"""Damaged or unsupported inputs: every kind gives DamagedFileError (or FileNotFoundError /
ValueError for bad arrays) naming the file, what is wrong and what to do."""

import json
import shutil

import numpy as np
import pytest

from napari_sam2.errors import DamagedFileError
from napari_sam2.io import read_labels_tiff, read_labels_zarr, write_labels_tiff, write_labels_zarr


def _labels(shape=(3, 20, 24)):
    lab = np.zeros(shape, np.int32)
    lab[..., 3:9, 5:17] = 4
    return lab


def _edit_json(file, change):
    doc = json.loads(file.read_text())
    change(doc)
    file.write_text(json.dumps(doc))


def _ms(doc):
    return doc["attributes"]["ome"]["multiscales"][0]


def _good_store(tmp_path, name="s.zarr"):
    return tmp_path / name, write_labels_zarr(tmp_path / name, _labels(), provenance={"m": 1})


def _zarr_plain_folder(p):
    p.mkdir()
    (p / "readme.txt").write_text("hello")


def _zarr_v2(p):
    import zarr

    zarr.open_group(str(p), mode="w", zarr_format=2)


def _zarr_bad_json(p):
    write_labels_zarr(p, _labels())
    (p / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')


def _zarr_json_list(p):
    write_labels_zarr(p, _labels())
    (p / "zarr.json").write_text("[1, 2]")


def _zarr_root_array(p):
    import zarr

    zarr.open_array(str(p), mode="w", shape=(4, 4), dtype="int32", zarr_format=3)


def _zarr_no_ome(p):
    import zarr

    zarr.open_group(str(p), mode="w", zarr_format=3).create_array("0", shape=(4, 4), dtype="i4")


def _zarr_image_without_labels(p):
    import zarr

    g = zarr.open_group(str(p), mode="w", zarr_format=3)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [], "datasets": [{"path": "0"}]}]}


def _zarr_image_missing_listed_labels(p):
    import zarr

    _zarr_image_without_labels(p)
    zarr.open_group(str(p / "labels"), mode="w", zarr_format=3).attrs["ome"] = {
        "version": "0.5", "labels": ["gone"]}


def _zarr_no_multiscales(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: d["attributes"]["ome"].pop("multiscales"))


def _zarr_no_datasets(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: _ms(d).update(datasets=[]))


def _zarr_missing_array(p):
    write_labels_zarr(p, _labels())
    shutil.rmtree(p / "0")


def _zarr_array_bad_json(p):
    write_labels_zarr(p, _labels())
    (p / "0" / "zarr.json").write_text("not json at all")


def _zarr_array_bad_dtype(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "0" / "zarr.json", lambda d: d.update(data_type="int33"))


def _zarr_garbage_chunks(p):
    write_labels_zarr(p, _labels())
    for chunk in (p / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\x00garbage" * 5)


def _zarr_truncated_chunk(p):
    write_labels_zarr(p, _labels())
    chunk = next(c for c in sorted((p / "0" / "c").rglob("*")) if c.is_file())
    chunk.write_bytes(chunk.read_bytes()[:10])


def _zarr_float_array(p):
    import zarr

    write_labels_zarr(p, _labels())
    shutil.rmtree(p / "0")
    g = zarr.open_group(str(p), mode="a")
    g.create_array("0", shape=(3, 20, 24), dtype="float32")[...] = 0.5


def _zarr_1d_array(p):
    import zarr

    write_labels_zarr(p, _labels())
    shutil.rmtree(p / "0")
    zarr.open_group(str(p), mode="a").create_array("0", shape=(7,), dtype="int32")


def _zarr_scale_length(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: _ms(d)["datasets"][0].update(
        coordinateTransformations=[{"type": "scale", "scale": [1.0, 2.0]}]))


def _zarr_scale_text(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: _ms(d)["datasets"][0].update(
        coordinateTransformations=[{"type": "scale", "scale": ["a", "b", "c"]}]))


def _zarr_provenance_not_dict(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: d["attributes"].update(napari_sam2="oops"))


def _zarr_bad_colors(p):
    write_labels_zarr(p, _labels())
    _edit_json(p / "zarr.json", lambda d: d["attributes"]["ome"].update(
        {"image-label": {"colors": [{"label-value": 1}]}}))


def _zarr_dataset_is_group(p):
    import zarr

    write_labels_zarr(p, _labels())
    shutil.rmtree(p / "0")
    zarr.open_group(str(p), mode="a").create_group("0")


ZARR_CASES = [
    (_zarr_plain_folder, "not an OME-Zarr .*no zarr.json"),
    (_zarr_v2, "zarr v2 store"),
    (_zarr_bad_json, "zarr.json cannot be read as JSON"),
    (_zarr_json_list, "not a JSON object"),
    (_zarr_root_array, "is a zarr array, not an OME-Zarr"),
    (_zarr_no_ome, "no 'multiscales' and 'image-label' metadata"),
    (_zarr_image_without_labels, "OME-Zarr image without labels"),
    (_zarr_image_missing_listed_labels, "lists the label images \\['gone'\\]"),
    (_zarr_no_multiscales, "OME metadata in zarr.json is malformed"),
    (_zarr_no_datasets, "OME metadata in zarr.json is malformed"),
    (_zarr_missing_array, "label array '0' is missing"),
    (_zarr_array_bad_json, "0/zarr.json cannot be read as JSON"),
    (_zarr_array_bad_dtype, "metadata of its array '0' is invalid"),
    (_zarr_garbage_chunks, "chunk of its label array '0' cannot be decoded"),
    (_zarr_truncated_chunk, "chunk of its label array '0' cannot be decoded"),
    (_zarr_float_array, "holds float32 values, but labels must be integers"),
    (_zarr_1d_array, "has 1 dimensions"),
    (_zarr_scale_length, "scale has 2 entries for a 3-D array"),
    (_zarr_scale_text, "OME metadata in zarr.json is malformed"),
    (_zarr_provenance_not_dict, "malformed \\(TypeError: the 'napari_sam2' record is a str"),
    (_zarr_bad_colors, "OME metadata in zarr.json is malformed"),
    (_zarr_dataset_is_group, "'0' is not a zarr array"),
]


def test_zarr_that_is_a_file_or_missing(tmp_path):
    (tmp_path / "f.zarr").write_text("x")
    with pytest.raises(DamagedFileError, match="f.zarr is a file, not an OME-Zarr folder"):
        read_labels_zarr(tmp_path / "f.zarr")
    with pytest.raises(FileNotFoundError, match="missing.zarr does not exist"):
        read_labels_zarr(tmp_path / "missing.zarr")


def _tiff_text(p):
    p.write_text("this is not an image")


def _tiff_empty(p):
    p.write_bytes(b"")


def _tiff_truncated(p):
    rng = np.random.default_rng(0)
    write_labels_tiff(p, rng.integers(0, 1000, (3, 64, 64)).astype(np.int32))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _tiff_6d(p):
    import tifffile

    tifffile.imwrite(p, np.zeros((2, 2, 2, 2, 4, 4), np.uint8), photometric="minisblack")


def _tiff_1d(p):
    import tifffile

    tifffile.imwrite(p, np.zeros((8,), np.uint8))


def _tiff_float(p):
    import tifffile

    tifffile.imwrite(p, np.full((8, 8), 0.5, np.float32))


def _tiff_complex(p):
    import tifffile

    tifffile.imwrite(p, np.zeros((8, 8), np.complex64))


def _tiff_rgb(p):
    import tifffile

    tifffile.imwrite(p, np.zeros((8, 8, 3), np.uint8))


def _our_tag(p, text, data=None):
    import tifffile

    tifffile.imwrite(p, np.zeros((3, 8, 8), np.int32) if data is None else data,
                     software="napari-sam2", photometric="minisblack",
                     extratags=[(65000, "s", 0, text, True)])


def _tiff_tag_not_json(p):
    _our_tag(p, "{broken")


def _tiff_tag_missing_keys(p):
    _our_tag(p, json.dumps({"name": "x"}))


def _tiff_tag_wrong_shape(p):
    _our_tag(p, json.dumps({"name": "x", "axes": ["z", "y", "x"], "scale": [1, 1, 1],
                            "translate": [0, 0, 0], "shape": [5, 8, 8]}))


def _tiff_tag_wrong_axes(p):
    _our_tag(p, json.dumps({"name": "x", "axes": ["y", "x"], "scale": [1, 1],
                            "translate": [0, 0], "shape": [3, 8, 8]}))


TIFF_CASES = [
    (_tiff_text, "cannot be read as a TIFF .*not a TIFF file"),
    (_tiff_empty, "cannot be read as a TIFF"),
    (_tiff_truncated, "cannot be read as a TIFF .*damaged, truncated"),
    (_tiff_6d, "has 6 dimensions"),
    (_tiff_1d, "has 1 dimensions"),
    (_tiff_float, "holds float32 values, but labels must be integers"),
    (_tiff_complex, "holds complex64 values"),
    (_tiff_rgb, "has colour samples"),
    (_tiff_tag_not_json, "napari-sam2 record \\(TIFF tag 65000\\) is damaged"),
    (_tiff_tag_missing_keys, "napari-sam2 record \\(TIFF tag 65000\\) is damaged"),
    (_tiff_tag_wrong_shape, "does not fit the pixels"),
    (_tiff_tag_wrong_axes, "describes 2 axes for a 3-D array"),
]


@pytest.mark.parametrize("make, match", ZARR_CASES + TIFF_CASES,
                         ids=[c[0].__name__ for c in ZARR_CASES + TIFF_CASES])
def test_damaged_file(tmp_path, make, match):
    """Each kind of damage gives DamagedFileError with the file named and the reason."""
    is_zarr = make.__name__.startswith("_zarr")
    path = tmp_path / ("bad.zarr" if is_zarr else "bad.tif")
    make(path)
    with pytest.raises(DamagedFileError, match=match) as info:
        (read_labels_zarr if is_zarr else read_labels_tiff)(path)
    assert str(path) in str(info.value)


def test_tiff_that_is_a_folder_or_missing(tmp_path):
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(DamagedFileError, match="d.tif is a folder, not a TIFF file"):
        read_labels_tiff(tmp_path / "d.tif")
    with pytest.raises(FileNotFoundError, match="missing.tif does not exist"):
        read_labels_tiff(tmp_path / "missing.tif")


BAD_ARRAYS = [
    (np.zeros((4, 4), np.float32), "integer dtype, got float32.*astype"),
    (np.zeros((4, 4), np.float64) + 0.5, "integer dtype, got float64"),
    (np.zeros((4, 4), np.complex64), "integer dtype, got complex64"),
    (np.array([["a", "b"], ["c", "d"]]), "integer dtype, got <U1"),
    (np.array(3, np.int32), "2 to 5 dimensions.*got shape \\(\\).*labels\\[None\\]"),
    (np.zeros((4,), np.int32), "2 to 5 dimensions.*got shape \\(4,\\)"),
    (np.zeros((1, 1, 1, 1, 4, 4), np.int32),
     "2 to 5 dimensions.*\\(1, 1, 1, 1, 4, 4\\).*one time point"),
    (np.zeros((0, 4), np.int32), "labels are empty"),
]


@pytest.mark.parametrize("write", [write_labels_zarr, write_labels_tiff])
@pytest.mark.parametrize("labels, match", BAD_ARRAYS)
def test_writers_refuse_bad_label_arrays(tmp_path, write, labels, match):
    with pytest.raises(ValueError, match=match):
        write(tmp_path / "out", labels)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("write", [write_labels_zarr, write_labels_tiff])
@pytest.mark.parametrize("kwargs, match", [
    ({"scale": (1, 2, 3)}, "scale needs 2 values"),
    ({"scale": (1, float("nan"))}, "scale must be finite"),
    ({"translate": (0,)}, "translate needs 2 values"),
    ({"axis_labels": ("y",)}, "axis_labels needs 2 names"),
    ({"units": ("um",)}, "units needs 2 entries"),
])
def test_writers_refuse_bad_attributes(tmp_path, write, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write(tmp_path / "out", np.zeros((4, 4), np.int32), **kwargs)
    assert list(tmp_path.iterdir()) == []
