"""Saving never destroys anything: atomic replacement, refusals, labels beside an OME-Zarr image.

Real files on disk; a full disk is simulated in a subprocess with a file-size limit
(tests/full_disk.py).
"""

import json

import numpy as np
import pytest

from napari_sam2.errors import RefusedOverwriteError
from napari_sam2.io import (
    labels_target,
    read_labels_tiff,
    read_labels_zarr,
    write_labels_tiff,
    write_labels_zarr,
)
from tests.full_disk import hidden_leftovers, run_on_full_disk, tree_snapshot


def _labels(shape=(3, 20, 24), value=5):
    lab = np.zeros(shape, np.int32)
    lab[..., 3:9, 5:17] = value
    lab[..., 12:15, 2:6] = value + 1
    return lab


def _big_random(shape=(6, 256, 256)):
    """Labels that compress badly: each plane's chunk is far above a 64 kB file-size cap."""
    return np.random.default_rng(0).integers(0, 2**31 - 1, shape).astype(np.int32)


_WRITE = """
import numpy as np
from napari_sam2.io import write_labels_zarr, write_labels_tiff
big = np.random.default_rng(0).integers(0, 2**31 - 1, (6, 256, 256)).astype(np.int32)
try:
    write_labels_{kind}({path!r}, big, name="new", provenance={{"model": "other"}})
except OSError as exc:
    print("OSError:", exc)
else:
    print("no error")
"""


@pytest.mark.parametrize("kind, name", [("zarr", "old.zarr"), ("tiff", "old.tif")])
def test_full_disk_mid_write_keeps_the_previous_file(tmp_path, kind, name):
    write = write_labels_zarr if kind == "zarr" else write_labels_tiff
    read = read_labels_zarr if kind == "zarr" else read_labels_tiff
    target = tmp_path / name
    old = _labels()
    write(target, old, name="old", scale=(2, 0.5, 0.5), provenance={"model": "sam2_demo"})
    before = tree_snapshot(target)
    assert max(len(b) for b in before.values()) < 64_000

    result = run_on_full_disk(_WRITE.format(kind=kind, path=str(target)), 64_000)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OSError:"), result.stdout + result.stderr
    assert str(target) in result.stdout and "previous file" in result.stdout
    assert "disk space" in result.stdout
    assert tree_snapshot(target) == before
    back, meta = read(target)[:2]
    np.testing.assert_array_equal(back, old)
    assert meta.name == "old" and meta.scale == (2.0, 0.5, 0.5)
    assert meta.provenance["model"] == "sam2_demo"
    assert hidden_leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("kind, name", [("zarr", "old.zarr"), ("tiff", "old.tif")])
def test_unserialisable_provenance_changes_nothing(tmp_path, kind, name):
    write = write_labels_zarr if kind == "zarr" else write_labels_tiff
    read = read_labels_zarr if kind == "zarr" else read_labels_tiff
    target = tmp_path / name
    old = _labels()
    write(target, old, provenance={"model": "sam2_demo"})
    before = tree_snapshot(target)
    with pytest.raises(ValueError, match="cannot be saved as JSON.*set"):
        write(target, _labels(value=9), provenance={"objects": {1, 2}})
    assert tree_snapshot(target) == before
    np.testing.assert_array_equal(read(target)[0], old)
    assert hidden_leftovers(tmp_path) == []
    # and a fresh target is not created at all
    with pytest.raises(ValueError, match="cannot be saved as JSON"):
        write(tmp_path / f"new.{name.split('.')[1]}", old, provenance={"arr": np.zeros(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_numpy_scalars_in_provenance_are_saved_as_numbers(tmp_path):
    prov = {"frame": np.int64(3), "lo": np.float32(0.5), "ok": np.bool_(True)}
    _, meta, _ = read_labels_zarr(write_labels_zarr(tmp_path / "a.zarr", _labels(),
                                                    provenance=prov))
    assert meta.provenance == {"frame": 3, "lo": 0.5, "ok": True}
    _, meta = read_labels_tiff(write_labels_tiff(tmp_path / "a.tif", _labels(), provenance=prov))
    assert meta.provenance == {"frame": 3, "lo": 0.5, "ok": True}


@pytest.mark.parametrize("kind", ["zarr", "tiff"])
def test_saving_twice_replaces_our_own_file(tmp_path, kind):
    write = write_labels_zarr if kind == "zarr" else write_labels_tiff
    read = read_labels_zarr if kind == "zarr" else read_labels_tiff
    target = tmp_path / ("a.zarr" if kind == "zarr" else "a.tif")
    write(target, _labels((2, 20, 24)), provenance={"n": 1})
    new = _labels((4, 30, 40), value=20)
    assert write(target, new, provenance={"n": 2}) == str(target)
    back, meta = read(target)[:2]
    np.testing.assert_array_equal(back, new)
    assert meta.provenance["n"] == 2
    assert hidden_leftovers(tmp_path) == []


def _ome_zarr_image(path, shape=(2, 20, 24)):
    """An OME-Zarr 0.5 image as other software writes it (plain zarr: multiscales + arrays)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
                 {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1, 0.5, 0.5]}]},
            {"path": "1", "coordinateTransformations": [
                {"type": "scale", "scale": [1, 1, 1]}]}],
    }]}
    image = np.random.default_rng(1).integers(0, 60000, shape).astype(np.uint16)
    root.create_array("0", shape=image.shape, dtype=image.dtype, chunks=(1, 10, 12))[...] = image
    root.create_array("1", shape=(2, 10, 12), dtype=image.dtype)[...] = image[:, ::2, ::2]
    return image


def test_labels_for_an_ome_zarr_image_go_beside_it(tmp_path):
    import zarr

    image_path = tmp_path / "image.zarr"
    image = _ome_zarr_image(image_path)
    image_files = {k: v for k, v in tree_snapshot(image_path).items()
                   if not k.startswith("labels")}
    lab = _labels((2, 20, 24))
    assert labels_target(image_path, "cells SAM labels") == \
        image_path / "labels" / "cells_SAM_labels"

    written = write_labels_zarr(image_path, lab, name="cells SAM labels", scale=(1, 0.5, 0.5))

    assert written == str(image_path / "labels" / "cells_SAM_labels")
    after = tree_snapshot(image_path)
    assert {k: v for k, v in after.items() if not k.startswith("labels")} == image_files
    root = zarr.open_group(str(image_path), mode="r")
    np.testing.assert_array_equal(root["0"][...], image)
    group = json.loads((image_path / "labels" / "zarr.json").read_text())
    assert group["attributes"]["ome"]["labels"] == ["cells_SAM_labels"]
    back, meta, _ = read_labels_zarr(image_path)  # the reader finds image.zarr/labels/<first>
    np.testing.assert_array_equal(back, lab)
    assert meta.name == "cells SAM labels"

    # saving again replaces only our labels; a second name is added to the list
    lab2 = _labels((2, 20, 24), value=40)
    write_labels_zarr(image_path, lab2, name="cells SAM labels")
    write_labels_zarr(image_path, lab, name="nuclei")
    group = json.loads((image_path / "labels" / "zarr.json").read_text())
    assert group["attributes"]["ome"]["labels"] == ["cells_SAM_labels", "nuclei"]
    np.testing.assert_array_equal(read_labels_zarr(image_path)[0], lab2)
    np.testing.assert_array_equal(
        read_labels_zarr(image_path / "labels" / "nuclei")[0], lab)
    assert {k: v for k, v in tree_snapshot(image_path).items()
            if not k.startswith("labels")} == image_files
    assert hidden_leftovers(image_path / "labels") == []


def test_existing_labels_group_of_an_image_keeps_its_entries(tmp_path):
    import zarr

    image_path = tmp_path / "image.zarr"
    _ome_zarr_image(image_path)
    labels_group = zarr.open_group(str(image_path / "labels"), mode="w", zarr_format=3)
    labels_group.attrs["ome"] = {"version": "0.5", "labels": ["theirs"], "extra": 1}
    theirs = labels_group.create_group("theirs")
    theirs.attrs["ome"] = {"version": "0.5", "image-label": {},
                           "multiscales": [{"axes": [], "datasets": [{"path": "0"}]}]}
    theirs.create_array("0", shape=(20, 24), dtype="uint8")[...] = 3
    before = tree_snapshot(image_path / "labels" / "theirs")

    write_labels_zarr(image_path, _labels((2, 20, 24)), name="mine")
    with pytest.raises(RefusedOverwriteError, match="theirs: it is a zarr group written by oth"):
        write_labels_zarr(image_path, _labels((2, 20, 24)), name="theirs")

    ome = json.loads((image_path / "labels" / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["labels"] == ["theirs", "mine"] and ome["extra"] == 1
    assert tree_snapshot(image_path / "labels" / "theirs") == before


def _refused(target, write, match):
    before = tree_snapshot(target)
    with pytest.raises(RefusedOverwriteError, match=match) as info:
        write(target, _labels())
    assert str(target) in str(info.value) and "Nothing was changed" in str(info.value)
    assert tree_snapshot(target) == before
    assert hidden_leftovers(target.parent) == []


def test_zarr_never_replaces_what_is_not_ours(tmp_path):
    import zarr

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("1,2,3")
    _refused(folder, write_labels_zarr, "a folder of other files: 2 entries")

    plain = tmp_path / "plain.zarr"
    plain.write_text("not a folder")
    _refused(plain, write_labels_zarr, "is a file")

    array = tmp_path / "array.zarr"
    zarr.open_array(str(array), mode="w", shape=(4, 4), dtype="uint8", zarr_format=3)[...] = 1
    _refused(array, write_labels_zarr, "a zarr array")

    group = tmp_path / "group.zarr"
    zarr.open_group(str(group), mode="w", zarr_format=3).create_array(
        "x", shape=(3,), dtype="uint8")
    _refused(group, write_labels_zarr, "zarr group written by other software")

    v2 = tmp_path / "v2.zarr"
    zarr.open_group(str(v2), mode="w", zarr_format=2).attrs["multiscales"] = []
    _refused(v2, write_labels_zarr, "zarr v2 store")

    ours = tmp_path / "ours.zarr"
    write_labels_zarr(ours, _labels())
    (ours / "my_analysis.csv").write_text("area\n12")
    _refused(ours, write_labels_zarr, "also holds other files \\(my_analysis.csv\\)")

    ours2 = tmp_path / "ours2.zarr"
    write_labels_zarr(ours2, _labels())
    (ours2 / "0" / "extra.bin").write_bytes(b"x")
    _refused(ours2, write_labels_zarr, "0/extra.bin")

    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    _refused(broken, write_labels_zarr, "zarr.json cannot be read")


def test_an_empty_folder_may_be_used(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    write_labels_zarr(tmp_path / "empty.zarr", _labels())
    np.testing.assert_array_equal(read_labels_zarr(tmp_path / "empty.zarr")[0], _labels())


def test_tiff_never_replaces_what_is_not_ours(tmp_path):
    import tifffile

    foreign = tmp_path / "image.tif"
    tifffile.imwrite(foreign, np.ones((3, 20, 24), np.uint16), photometric="minisblack")
    _refused(foreign, write_labels_tiff, "a TIFF written by 'tifffile.py'")

    imagej = tmp_path / "imagej.tif"
    tifffile.imwrite(imagej, np.ones((3, 20, 24), np.uint16), imagej=True)
    _refused(imagej, write_labels_tiff, "a TIFF written by")

    text = tmp_path / "notes.tif"
    text.write_text("not a tiff")
    _refused(text, write_labels_tiff, "cannot be read as a TIFF")

    folder = tmp_path / "folder.tif"
    folder.mkdir()
    (folder / "x").write_text("x")
    _refused(folder, write_labels_tiff, "a folder")


def test_refused_image_target_inside_an_image_labels_path(tmp_path):
    """Writing directly to image.zarr/labels/<name> registers it; a labels folder that is not a
    zarr group is refused rather than overwritten."""
    image_path = tmp_path / "image.zarr"
    _ome_zarr_image(image_path)
    write_labels_zarr(image_path / "labels" / "direct", _labels())
    group = json.loads((image_path / "labels" / "zarr.json").read_text())
    assert group["attributes"]["ome"]["labels"] == ["direct"]

    other = tmp_path / "other.zarr"
    _ome_zarr_image(other)
    (other / "labels").write_text("a file where the labels group goes")
    with pytest.raises(RefusedOverwriteError, match="not a zarr v3 group"):
        write_labels_zarr(other, _labels((2, 20, 24)), name="x")
    assert (other / "labels").read_text() == "a file where the labels group goes"


def test_overwrite_false_refuses_even_our_own(tmp_path):
    write_labels_zarr(tmp_path / "a.zarr", _labels())
    with pytest.raises(RefusedOverwriteError, match="overwrite=False"):
        write_labels_zarr(tmp_path / "a.zarr", _labels(value=2), overwrite=False)
    np.testing.assert_array_equal(read_labels_zarr(tmp_path / "a.zarr")[0], _labels())


def test_missing_folders_are_created_and_a_file_in_the_way_is_named(tmp_path):
    out = write_labels_tiff(tmp_path / "new" / "deeper" / "a.tif", _labels())
    np.testing.assert_array_equal(read_labels_tiff(out)[0], _labels())
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(NotADirectoryError, match="blocker.*is a file, not a folder"):
        write_labels_zarr(tmp_path / "blocker" / "a.zarr", _labels())
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        write_labels_tiff(tmp_path / "blocker" / "a.tif", _labels())


def test_read_only_folder_gives_a_clear_error(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        for write, name in ((write_labels_zarr, "a.zarr"), (write_labels_tiff, "a.tif")):
            with pytest.raises(PermissionError, match="no permission to write in"):
                write(folder / name, _labels())
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []
