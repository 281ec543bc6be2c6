"""Save Labels through the plugin's writers and reopen them with napari: identical labels."""

import numpy as np
import pytest

from napari_sam2._napari._reader import napari_get_reader


def _labels():
    lab = np.zeros((5, 30, 44), np.int32)
    lab[1:4, 5:15, 7:20] = 3
    lab[2, 20:25, 30:40] = 1000
    return lab


@pytest.mark.parametrize("ext", [".zarr", ".tif"])
def test_save_and_reopen_in_napari(make_napari_viewer, tmp_path, ext):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(
        _labels(), name="cells SAM labels", scale=(2.0, 0.5, 0.25), translate=(1.0, -3.0, 7.5),
        axis_labels=("t", "y", "x"), metadata={"napari_sam2": {"model": "sam2_demo"}},
    )
    path = str(tmp_path / f"out_labels{ext}")
    written = viewer.layers.save(path, selected=False, plugin="napari-sam2")
    assert written == [path]
    viewer.layers.clear()
    viewer.open(path, plugin="napari-sam2")
    (back,) = viewer.layers
    assert back._type_string == "labels"
    np.testing.assert_array_equal(np.asarray(back.data), layer.data)
    assert np.asarray(back.data).dtype == np.int32
    np.testing.assert_allclose(back.scale, layer.scale)
    np.testing.assert_allclose(back.translate, layer.translate)
    assert tuple(back.axis_labels) == ("t", "y", "x") and back.name == "cells SAM labels"
    assert back.metadata["napari_sam2"]["model"] == "sam2_demo"


def test_reader_leaves_other_files_to_napari(tmp_path):
    import tifffile
    import zarr

    other = tmp_path / "image.tif"
    tifffile.imwrite(other, np.zeros((8, 8), np.uint16))
    assert napari_get_reader(str(other)) is None
    named = tmp_path / "float_labels.tif"  # named as labels, but not integers
    tifffile.imwrite(named, np.zeros((8, 8), np.float32))
    assert napari_get_reader(str(named)) is None
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    assert napari_get_reader(str(tmp_path / "plain.zarr")) is None
    assert napari_get_reader(str(tmp_path / "nothing.png")) is None
    assert napari_get_reader(str(tmp_path / "missing.zarr")) is None


def test_writer_refuses_float_labels(tmp_path):
    from napari_sam2._napari._writer import write_zarr

    with pytest.raises(ValueError, match="integer"):
        write_zarr(str(tmp_path / "f.zarr"), np.zeros((4, 4), np.float32), {})


def test_open_samples_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "cells")
    viewer.open_sample("napari-sam2", "ellipsoids")
    cells, vol = viewer.layers
    assert cells.data.dtype == np.uint16 and tuple(cells.axis_labels) == ("t", "y", "x")
    assert vol.scale[0] == 2.0


def test_reader_claims_damaged_labels_and_says_what_is_wrong(make_napari_viewer, tmp_path):
    """Damaged stores of ours are claimed and give DamagedFileError naming the file; files that
    are not ours are left to other readers (None), and napari_get_reader never raises."""
    import shutil

    from napari_sam2.errors import DamagedFileError
    from napari_sam2.io import write_labels_tiff, write_labels_zarr

    no_array = tmp_path / "no_array.zarr"
    write_labels_zarr(no_array, _labels())
    shutil.rmtree(no_array / "0")
    bad_json = tmp_path / "bad_json.zarr"
    write_labels_zarr(bad_json, _labels())
    (bad_json / "zarr.json").write_text("{oops")
    bad_chunk = tmp_path / "bad_chunk.zarr"
    write_labels_zarr(bad_chunk, _labels())
    for chunk in (bad_chunk / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"garbage!")
    truncated = tmp_path / "truncated.tif"
    write_labels_tiff(truncated, np.random.default_rng(0).integers(0, 9, (5, 64, 64)))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    for path, match in [(no_array, "label array '0' is missing"),
                        (bad_json, "cannot be read as JSON"),
                        (bad_chunk, "cannot be decoded"),
                        (truncated, "damaged, truncated")]:
        reader = napari_get_reader(str(path))
        assert reader is not None, path
        with pytest.raises(DamagedFileError, match=match) as info:
            reader(str(path))
        assert str(path) in str(info.value)

    # through napari itself: the message reaches the user and no layer is added
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="label array '0' is missing") as info:
        viewer.open(str(no_array), plugin="napari-sam2")
    assert str(no_array) in str(info.value)
    assert len(viewer.layers) == 0

    # not ours: left to napari (None), never an exception
    text_tif = tmp_path / "notes.tif"
    text_tif.write_text("not a tiff")
    folder = tmp_path / "folder.zarr"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    file_zarr = tmp_path / "file.zarr"
    file_zarr.write_text("x")
    for path in (text_tif, folder, file_zarr, tmp_path / "missing.tif", [str(text_tif)] * 2):
        assert napari_get_reader(path if isinstance(path, list) else str(path)) is None


def test_saving_to_an_ome_zarr_image_writes_its_labels_group(make_napari_viewer, tmp_path):
    import zarr

    from napari_sam2.io import read_labels_zarr

    image_path = tmp_path / "image.zarr"
    root = zarr.open_group(str(image_path), mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": t} for n, t in (("t", "time"), ("y", "space"),
                                                      ("x", "space"))],
        "datasets": [{"path": "0"}]}]}
    image = np.random.default_rng(2).integers(0, 4000, (5, 30, 44)).astype(np.uint16)
    root.create_array("0", shape=image.shape, dtype=image.dtype)[...] = image
    image_meta = (image_path / "zarr.json").read_bytes()

    viewer = make_napari_viewer()
    viewer.add_labels(_labels(), name="cells SAM labels")
    written = viewer.layers.save(str(image_path), selected=False, plugin="napari-sam2")

    assert written == [str(image_path / "labels" / "cells_SAM_labels")]
    np.testing.assert_array_equal(zarr.open_group(str(image_path), mode="r")["0"][...], image)
    assert (image_path / "zarr.json").read_bytes() == image_meta
    np.testing.assert_array_equal(read_labels_zarr(image_path)[0], _labels())


def test_writer_refuses_to_replace_what_is_not_ours(tmp_path):
    import tifffile

    from napari_sam2._napari._writer import write_tiff, write_zarr
    from napari_sam2.errors import RefusedOverwriteError

    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(RefusedOverwriteError, match="mine.zarr: it is a folder of other files"):
        write_zarr(str(folder), _labels(), {"name": "x"})
    assert (folder / "precious.txt").read_text() == "keep me"
    foreign = tmp_path / "raw_labels.tif"
    tifffile.imwrite(foreign, np.ones((4, 4), np.uint16))
    before = foreign.read_bytes()
    with pytest.raises(RefusedOverwriteError, match="raw_labels.tif: it is a TIFF written by"):
        write_tiff(str(foreign), _labels(), {"name": "x"})
    assert foreign.read_bytes() == before
