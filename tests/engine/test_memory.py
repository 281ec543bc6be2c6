"""Memory-frame and object-pointer selection (pure index logic, no weights)."""

from dataclasses import replace

import pytest

from napari_sam2.engine.memory import (
    memory_frames,
    plan_from_config,
    plan_memory,
    pointer_frames,
    pointer_max_distance,
    previous_frame,
    split_conditioning,
)
from napari_sam2.model.config import get_config


def test_forward_window_is_six_previous_frames_oldest_first():
    got = memory_frames(10, [0], set(range(1, 10)), num_maskmem=7)
    assert got == [(0, 0), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9)]


def test_reverse_window_looks_ahead():
    got = memory_frames(10, [20], set(range(11, 20)), num_maskmem=7, reverse=True)
    assert got == [(0, 20), (1, 16), (2, 15), (3, 14), (4, 13), (5, 12), (6, 11)]


def test_missing_frames_are_skipped_and_cond_frames_not_repeated():
    # frame 2: frames 1 (tracked) and 0 (a cond frame, already at t_pos 0) are the only past
    got = memory_frames(2, [0], {1}, num_maskmem=7)
    assert got == [(0, 0), (6, 1)]


def test_future_conditioning_frames_are_used():
    # object prompted on frame 3 only, tracked on frame 1 going forward
    got = memory_frames(1, [3], {0}, num_maskmem=7)
    assert got == [(0, 3), (6, 0)]


def test_temporal_stride():
    # stride 3 forward from frame 20: adjacent frame 19, then floor(18/3)*3 = 18, 15, 12, 9, 6
    assert [previous_frame(20, r, 3, False) for r in range(1, 7)] == [19, 18, 15, 12, 9, 6]
    # reverse from frame 20: 21, then ceil(22/3)*3 = 24, 27, ...
    assert [previous_frame(20, r, 3, True) for r in range(1, 7)] == [21, 24, 27, 30, 33, 36]
    got = memory_frames(20, [], set(range(100)), num_maskmem=7, stride=3)
    assert [t for _, t in got] == [6, 9, 12, 15, 18, 19]
    with pytest.raises(ValueError):
        memory_frames(1, [], set(), num_maskmem=7, stride=0)


def test_pointers_past_conditioning_signed_and_recent():
    # 2.1: cond frames in the past only, signed distance; then up to 15 previous frames
    got = pointer_frames(5, [0, 3, 7], {1, 2, 4}, num_frames=8, reverse=False)
    assert got == [(5, 0), (2, 3), (1, 4), (3, 2), (4, 1)]
    # reverse: cond frames at or after the frame, distance (f - t) * -1
    got = pointer_frames(5, [0, 3, 7], {6}, num_frames=8, reverse=True)
    assert got == [(2, 7), (1, 6)]
    # 2.0: unsigned distance; with only_past False the future cond frame is included too
    got = pointer_frames(5, [7], set(), num_frames=8, reverse=False, signed=False,
                         only_past=False)
    assert got == [(2, 7)]


def test_pointer_walk_limits():
    avail = set(range(100))
    got = pointer_frames(50, [], avail, num_frames=100, max_obj_ptrs=16)
    assert [d for d, _ in got] == list(range(1, 16))
    # min(num_frames, 16) - 1 steps back at most, and never past the stack boundary
    got = pointer_frames(3, [], avail, num_frames=6)
    assert got == [(1, 2), (2, 1), (3, 0)]
    got = pointer_frames(3, [], avail, num_frames=6, reverse=True)
    assert got == [(1, 4), (2, 5)]
    assert pointer_max_distance(8) == 7 and pointer_max_distance(100) == 15
    assert pointer_max_distance(1) == 1


def test_split_conditioning_limits():
    assert split_conditioning(5, [9, 0, 3]) == ([0, 3, 9], [])
    sel, unsel = split_conditioning(5, [0, 3, 6, 9, 20], 3)
    assert sel == [3, 6, 9] and unsel == [0, 20]
    with pytest.raises(ValueError):
        split_conditioning(5, [0, 3, 6], 1)


def test_unselected_cond_frames_serve_as_recent_memories():
    plan = plan_memory(5, [0, 4, 30], [], num_frames=40, max_cond_frames=2)
    assert [t for p, t in plan.spatial if p == 0] == [4, 30]
    assert plan.pointers == ((1, 4), (5, 0))  # 0 is unselected: a plain recent pointer
    assert plan.spatial[-1] == (2, 0)  # and a recent spatial memory, 5 frames back
    assert plan.shape_key == (3, 2) and plan.frames_needed == {0, 4, 30}


# ---------------------------------------------------------------- the shared selection, by case
# plan_from_config is what both the engine's Tracker and the training rollout call. Each row:
# (frame, conditioning frames, other frames with outputs, stack length, reverse,
#  expected spatial (t_pos, frame), expected pointers (distance, frame)). Official 2.1 config.
_RECENT_4_TO_9 = ((1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9))
SELECTION_CASES = {
    "forward": (10, [0], range(1, 10), 100, False,
                ((0, 0),) + _RECENT_4_TO_9,
                ((10, 0),) + tuple((d, 10 - d) for d in range(1, 10))),
    "reverse": (20, [30], range(21, 30), 40, True,
                ((0, 30), (1, 26), (2, 25), (3, 24), (4, 23), (5, 22), (6, 21)),
                ((10, 30),) + tuple((d, 20 + d) for d in range(1, 10))),
    # a far future conditioning frame is a spatial memory but not a pointer
    "conditioning far away": (50, [0, 100], range(44, 50), 200, False,
                              ((0, 0), (0, 100)) + tuple((k, 43 + k) for k in range(1, 7)),
                              ((50, 0),) + tuple((d, 50 - d) for d in range(1, 7))),
    # 40 past frames: the conditioning pointer plus 15 recent ones, 16 in all
    "more than 16 pointers": (40, [0], range(1, 40), 100, False,
                              ((0, 0),) + tuple((k, 33 + k) for k in range(1, 7)),
                              ((40, 0),) + tuple((d, 40 - d) for d in range(1, 16))),
    # correction on frame 5 kept as conditioning: t_pos 0, and no recent slot for it
    "correction as conditioning": (10, [0, 5], [1, 2, 3, 4, 6, 7, 8, 9], 20, False,
                                   ((0, 0), (0, 5), (1, 4), (3, 6), (4, 7), (5, 8), (6, 9)),
                                   ((10, 0), (5, 5), (1, 9), (2, 8), (3, 7), (4, 6), (6, 4),
                                    (7, 3), (8, 2), (9, 1))),
    # Meta's default: the correction on frame 5 is a plain output, a recent memory like any
    "correction not conditioning": (10, [0], range(1, 10), 20, False,
                                    ((0, 0),) + _RECENT_4_TO_9,
                                    ((10, 0),) + tuple((d, 10 - d) for d in range(1, 10))),
    # reverse after a forward pass, from a correction kept on frame 9: frame 0 lies ahead in
    # travel order, so it is a spatial memory but no pointer; the walk stops at the end (19)
    "reverse from a correction": (8, [0, 9], [*range(1, 9), *range(10, 20)], 20, True,
                                  ((0, 0), (0, 9), (1, 14), (2, 13), (3, 12), (4, 11), (5, 10)),
                                  ((1, 9),) + tuple((d, 8 + d) for d in range(2, 12))),
    # a 5-frame stack: at most min(5, 16) - 1 = 4 recent pointers
    "short stack": (4, [0], [1, 2, 3], 5, False,
                    ((0, 0), (4, 1), (5, 2), (6, 3)),
                    ((4, 0), (1, 3), (2, 2), (3, 1))),
}


@pytest.mark.parametrize("case", list(SELECTION_CASES))
def test_selection_table(case):
    frame, cond, other, n, reverse, spatial, pointers = SELECTION_CASES[case]
    cfg = get_config("sam2.1_hiera_tiny")
    plan = plan_from_config(cfg, frame, cond, other, num_frames=n, reverse=reverse)
    assert plan.frame == frame
    assert plan.spatial == spatial
    assert plan.pointers == pointers
    assert len(plan.pointers) <= cfg.max_obj_ptrs_in_encoder


def test_selection_reads_every_rule_from_the_config():
    cfg = replace(get_config("sam2.1_hiera_tiny"), num_maskmem=3,
                  memory_temporal_stride_for_eval=2, max_obj_ptrs_in_encoder=4,
                  only_obj_ptrs_in_the_past_for_eval=False,
                  use_signed_tpos_enc_to_obj_ptrs=False, max_cond_frames_in_attn=2)
    plan = plan_from_config(cfg, 10, [0, 12, 30], range(1, 10), num_frames=40)
    # cond 0 and 12 selected (closest before / after), 30 unselected; 2 recent slots on a
    # stride-2 grid (8, then the adjacent 9); future and unsigned pointers; 3 recent pointers
    assert plan.spatial == ((0, 0), (0, 12), (1, 8), (2, 9))
    assert plan.pointers == ((10, 0), (2, 12), (1, 9), (2, 8), (3, 7))
    # the same history with the official config
    official = plan_from_config(get_config("sam2.1_hiera_tiny"), 10, [0, 12, 30],
                                range(1, 10), num_frames=40)
    assert official.spatial == ((0, 0), (0, 12), (0, 30)) + _RECENT_4_TO_9
    assert official.pointers[0] == (10, 0) and len(official.pointers) == 10
