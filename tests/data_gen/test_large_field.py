"""LargeFieldTimelapse: lazy, deterministic, crops equal the whole frame, ground truth fits."""

import numpy as np
import pytest

from napari_sam2.data import LargeFieldTimelapse


def test_crops_are_the_whole_frame_cropped_and_render_only_their_tiles():
    field = LargeFieldTimelapse(shape=(1024, 768), n_frames=3, seed=4)
    assert field.shape == (3, 1024, 768) and field.dtype == np.uint16
    assert field.tiles_rendered == 0  # nothing drawn until read
    fresh = LargeFieldTimelapse(shape=(1024, 768), n_frames=3, seed=4, cache_tiles=0)
    crop = fresh[2, 300:420, 500:530]
    assert fresh.tiles_rendered == 2  # rows 300..419 lie in tile row 1, cols in tiles 1 and 2
    whole = field[2]
    assert whole.shape == (1024, 768) and whole.max() > 255
    assert np.array_equal(crop, whole[300:420, 500:530])
    assert np.array_equal(field[2, 7], whole[7]) and field[2, :, 9].shape == (1024,)
    again = LargeFieldTimelapse(shape=(1024, 768), n_frames=3, seed=4)[2]
    assert np.array_equal(again, whole)
    assert not np.array_equal(LargeFieldTimelapse(shape=(1024, 768), n_frames=3, seed=5)[2],
                              whole)


def test_cells_are_small_bright_and_move():
    field = LargeFieldTimelapse(shape=(1024, 1024), n_frames=6, seed=0)
    assert field.n_cells == 16
    lab = field.labels_region(0, slice(None), slice(None))
    img = field[0].astype(float)
    assert img[lab > 0].mean() > img[lab == 0].mean() + 1000
    for k in range(1, field.n_cells + 1):
        box, mask = field.cell_mask(0, k)
        assert np.array_equal(mask, lab[box[0]:box[2], box[1]:box[3]] == k)
        assert (lab == k).sum() == mask.sum()
        across = 2 * np.sqrt(mask.sum() / np.pi)
        assert 10 < across < 34  # 15-30 px cells, give or take the wobble
    moved = [np.hypot(*np.subtract(field.centre(5, k), field.centre(0, k)))
             for k in range(1, 17)]
    assert np.median(moved) > 3


def test_refuses_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        LargeFieldTimelapse(shape=(32, 2048))
    field = LargeFieldTimelapse(shape=(256, 256), n_frames=2)
    with pytest.raises(IndexError, match="out of range"):
        field[2]
    with pytest.raises(IndexError, match="step-1"):
        field[0, ::2]
