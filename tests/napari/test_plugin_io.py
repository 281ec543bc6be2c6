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
    path = str(tmp_path / f"out{ext}")
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
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    assert napari_get_reader(str(tmp_path / "plain.zarr")) is None
    assert napari_get_reader(str(tmp_path / "nothing.png")) is None
    assert napari_get_reader(str(tmp_path / "missing.zarr")) is None


def test_writer_refuses_float_labels(tmp_path):
    from napari_sam2._napari._writer import write_zarr

    with pytest.raises(TypeError, match="integer"):
        write_zarr(str(tmp_path / "f.zarr"), np.zeros((4, 4), np.float32), {})


def test_open_samples_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "cells")
    viewer.open_sample("napari-sam2", "ellipsoids")
    cells, vol = viewer.layers
    assert cells.data.dtype == np.uint16 and tuple(cells.axis_labels) == ("t", "y", "x")
    assert vol.scale[0] == 2.0
