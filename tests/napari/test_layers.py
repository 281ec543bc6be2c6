"""Mask pasting, ownership, undo and stack geometry (numpy only, no Qt)."""

import numpy as np
import pytest

from napari_sam2._napari._layers import (
    SamPainter,
    UndoGroup,
    UndoStack,
    labels_on_plane,
    next_free_label,
)
from napari_sam2._napari._stack import FrameStack, frame_ranges, stack_ref


def _disk(shape, center, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= r * r


def test_paste_writes_only_background_and_keeps_other_objects():
    data = np.zeros((3, 20, 30), np.int32)
    data[1, 5:10, 5:10] = 2  # another object
    data[1, 0:3, 0:3] = 9  # a manual edit elsewhere
    painter = SamPainter()
    key = (1, slice(None), slice(None))
    mask = np.zeros((20, 30), bool)
    mask[4:12, 4:12] = True
    edit = painter.paste(data, key, 1, mask)
    assert edit is not None
    assert (data[1, 5:10, 5:10] == 2).all()
    assert (data[1, 0:3, 0:3] == 9).all()
    assert (data[1][mask & (data[1] != 2)] == 1).all()
    assert data[0].max() == 0 and data[2].max() == 0  # other frames untouched
    assert edit.index.size == mask.sum() - 25


def test_second_paste_removes_only_sams_own_pixels():
    data = np.zeros((20, 30), np.int32)
    key = (slice(None), slice(None))
    painter = SamPainter()
    first = _disk((20, 30), (10, 10), 5)
    painter.paste(data, key, 3, first)
    data[0:2, 25:30] = 3  # the user paints label 3 by hand elsewhere
    second = _disk((20, 30), (10, 18), 5)
    painter.paste(data, key, 3, second)
    np.testing.assert_array_equal(data[second], 3)
    assert (data[first & ~second] == 0).all()  # SAM's old pixels were cleared
    assert (data[0:2, 25:30] == 3).all()  # the manual pixels of label 3 survive
    painter.paste(data, key, 3, np.zeros((20, 30), bool))  # object left the frame
    assert (data == 3).sum() == 10


def test_overwrite_takes_other_labels():
    data = np.full((8, 8), 5, np.int32)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    SamPainter().paste(data, (slice(None), slice(None)), 1, mask)
    assert (data == 1).sum() == 0
    SamPainter().paste(data, (slice(None), slice(None)), 1, mask, overwrite=True)
    assert (data == 1).sum() == 4


def test_undo_restores_and_keeps_later_edits():
    data = np.zeros((2, 16, 16), np.int32)
    painter = SamPainter()
    stack = UndoStack(depth=2)
    group = UndoGroup("propagate")
    for f in range(2):
        key = (f, slice(None), slice(None))
        group.edits.append(painter.paste(data, key, 4, _disk((16, 16), (8, 8), 4)))
    stack.push(group)
    data[1, 8, 8] = 7  # a manual edit after the SAM write
    restored = painter.undo(data, stack.pop())
    assert restored == 2 * _disk((16, 16), (8, 8), 4).sum() - 1
    assert data[0].max() == 0 and data[1, 8, 8] == 7 and (data[1] == 4).sum() == 0
    assert not painter.owned((0, slice(None), slice(None)), 4, (16, 16)).any()
    assert stack.pop() is None


def test_undo_stack_depth_and_empty_groups():
    stack = UndoStack(depth=2)
    stack.push(UndoGroup("nothing"))
    assert len(stack) == 0
    for i in range(3):
        g = UndoGroup(str(i))
        g.edits.append(object())
        stack.push(g)
    assert len(stack) == 2 and stack.pop().description == "2"


def test_paste_rejects_bad_input():
    data = np.zeros((4, 4), np.int32)
    with pytest.raises(ValueError, match="positive"):
        SamPainter().paste(data, (slice(None),) * 2, 0, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="does not match"):
        SamPainter().paste(data, (slice(None),) * 2, 1, np.ones((3, 4), bool))


def test_label_helpers():
    data = np.zeros((4, 4), np.int32)
    data[0, 0] = 5
    assert next_free_label(data) == 6 and next_free_label(data, used=[9]) == 10
    assert labels_on_plane(data) == [5]
    assert frame_ranges([5, 0, 1, 2, 7, 8]) == "0-2, 5, 7-8" and frame_ranges([]) == "-"


def test_stack_geometry_2d_3d_4d_rgb():
    ref = stack_ref((20, 30), None, (0, 0))
    assert ref.stack_axis is None and ref.plane_key(0) == (slice(None), slice(None))
    img4 = np.arange(3 * 4 * 5 * 6).reshape(3, 4, 5, 6)
    ref = stack_ref(img4.shape, 1, (2, 1.2, 0, 0))  # along z at t=2
    assert ref.fixed == ((0, 2),)
    frames = FrameStack(img4, ref)
    assert len(frames) == 4 and frames.shape == (4, 5, 6)
    np.testing.assert_array_equal(frames[3], img4[2, 3])
    assert ref.frame_of((2, 3.4, 1, 1)) == 3 and ref.contains((2.2, 0, 0, 0))
    assert not ref.contains((1, 0, 0, 0))
    rgb = np.zeros((2, 5, 6, 4), np.uint8)
    frames = FrameStack(rgb, stack_ref((2, 5, 6), 0, (0, 0, 0)), rgb=True)
    assert frames[1].shape == (5, 6, 3)
    with pytest.raises(ValueError, match="2 to 4 dimensions"):
        stack_ref((2, 2, 2, 5, 6), 0, (0,) * 5)
    with pytest.raises(ValueError, match="not one of the non-spatial"):
        stack_ref((4, 5, 6), 1, (0, 0, 0))
    with pytest.raises(IndexError):
        frames[5]
