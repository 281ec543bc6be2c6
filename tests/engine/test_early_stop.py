"""Early stop (``propagate(stop_after_absent=N)``) with the shipped sam2_demo model on a
synthetic z-stack in which the clicked ellipsoids end before the stack does."""

import numpy as np
import pytest

from napari_sam2.data.synthetic import make_ellipsoid_volume
from napari_sam2.engine.session import TrackingSession

N_STOP = 3


@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def volume():
    """(40, 96, 96): ellipsoid 2 spans slices 5-26, ellipsoid 1 slices 9-29; the model loses
    both a few slices after their end (forward)."""
    vol, labels = make_ellipsoid_volume(shape=(40, 96, 96), n_objects=3, seed=1)
    return vol, labels


def _click(labels, k):
    """(slice, [(row, col)]): the centre of ellipsoid ``k`` on its largest slice."""
    z = int((labels == k).sum((1, 2)).argmax())
    rows, cols = np.nonzero(labels[z] == k)
    return z, [[int(np.median(rows)), int(np.median(cols))]]


@pytest.fixture(scope="module")
def cache(model, volume):
    s = TrackingSession(model, volume[0])
    for f in range(s.num_frames):
        s.encode_frame(f)
    return s.feature_cache


def _session(model, volume, cache, objects=(2,)):
    s = TrackingSession(model, volume[0], feature_cache=cache)
    for k in objects:
        z, point = _click(volume[1], k)
        s.add_points(z, k, point, [1])
    return s


def _absent_runs(scores: list[float], n: int) -> int | None:
    """Index after which ``scores`` first had ``n`` values <= 0 in a row (None: never)."""
    run = 0
    for i, s in enumerate(scores):
        run = run + 1 if s <= 0 else 0
        if run >= n:
            return i
    return None


def test_an_ended_object_stops_and_earlier_masks_are_identical(model, volume, cache):
    full = {r.frame: r for r in _session(model, volume, cache).propagate()}
    s = _session(model, volume, cache)
    early = {r.frame: r for r in s.propagate(stop_after_absent=N_STOP)}

    order = sorted(full)
    scores = [float(full[f].object_scores[0]) for f in order]
    stop_at = _absent_runs(scores, N_STOP)
    assert stop_at is not None, scores  # the model does lose the object past its end
    assert list(early) == order[:stop_at + 1]  # the run ended there: fewer frames computed
    assert len(early) < len(full)
    last = order[stop_at]
    assert not (volume[1][last - N_STOP + 1:] == 2).any()  # it really had ended there
    for f in early:  # up to the stop, bit for bit what a run without the option gives
        assert early[f].obj_ids == full[f].obj_ids == [2]
        np.testing.assert_array_equal(early[f].logits, full[f].logits)
        np.testing.assert_array_equal(early[f].object_scores, full[f].object_scores)
    assert s.frames_with_output(2) == order[:stop_at + 1]  # later slices have no output
    # (the v3 demo weights found "it" again on a later slice without the stop; the v4 weights,
    # trained on nuclei that end along z, keep it absent: both are fine for the stop)


def test_a_large_n_or_none_changes_nothing(model, volume, cache):
    base = list(_session(model, volume, cache).propagate())
    for n in (None, 1000):
        again = list(_session(model, volume, cache).propagate(stop_after_absent=n))
        assert [r.frame for r in again] == [r.frame for r in base]
        for a, b in zip(again, base):
            np.testing.assert_array_equal(a.logits, b.logits)


def test_each_object_stops_on_its_own_the_others_are_unchanged(model, volume, cache):
    full = {r.frame: r for r in _session(model, volume, cache, (1, 2)).propagate()}
    s = _session(model, volume, cache, (1, 2))
    early = {r.frame: r for r in s.propagate(stop_after_absent=N_STOP)}
    order = sorted(full)
    stops = {}
    for k in (1, 2):
        scores = [float(full[f].object_scores[full[f].obj_ids.index(k)]) for f in order]
        stops[k] = order[_absent_runs(scores, N_STOP)]
    assert stops[2] < stops[1]  # ellipsoid 2 ends first
    assert list(early) == [f for f in order if f <= stops[1]]
    for f, r in early.items():
        assert r.obj_ids == [k for k in (1, 2) if f <= stops[k]]
        for k in r.obj_ids:  # objects are computed one by one on the CPU: the same bits
            np.testing.assert_array_equal(r.logits[r.obj_ids.index(k)],
                                          full[f].logits[full[f].obj_ids.index(k)])
    assert max(s.frames_with_output(2)) == stops[2]
    assert max(s.frames_with_output(1)) == stops[1]


def test_a_prompt_past_the_stop_restarts_the_object(model, volume, cache):
    """The skipped slices are left alone; the prompted slice shows the prompt's mask and the
    run goes on from it (it does not end while a prompt lies ahead)."""
    last = max(r.frame for r in _session(model, volume, cache).propagate(stop_after_absent=N_STOP))
    again = last + 6
    z, point = _click(volume[1], 2)
    s = _session(model, volume, cache)
    prompt = s.add_points(again, 2, point, [1])  # the user says: it is (also) here
    res = {r.frame: r for r in s.propagate(z, stop_after_absent=N_STOP)}
    assert list(res) == list(range(z, max(res) + 1)) and max(res) > again
    gap = [f for f in res if f < again and res[f].obj_ids == []]
    assert gap and gap == list(range(gap[0], again))  # stopped, until the prompt
    before = [float(res[f].object_scores[0]) for f in range(gap[0] - N_STOP, gap[0])]
    assert all(v <= 0 for v in before), before
    assert res[again].obj_ids == [2]
    np.testing.assert_array_equal(res[again].logits, prompt.logits)
    assert res[again + 1].obj_ids == [2]  # tracked again after the prompt
    assert not set(s.frames_with_output(2)) & set(gap)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_bad_values_are_refused_before_anything_changes(model, volume, cache, bad):
    s = _session(model, volume, cache)
    before = s.frames_with_output(2)
    with pytest.raises(ValueError, match="stop_after_absent must be an integer >= 1"):
        s.propagate(stop_after_absent=bad)
    assert s.frames_with_output(2) == before


def test_reverse_counts_from_the_start_frame(model, volume, cache):
    z, _ = _click(volume[1], 2)
    full = list(_session(model, volume, cache).propagate(z, reverse=True))
    early = list(_session(model, volume, cache).propagate(z, reverse=True, stop_after_absent=1))
    stop_at = _absent_runs([float(r.object_scores[0]) for r in full], 1)
    n = len(full) if stop_at is None else stop_at + 1
    assert [r.frame for r in early] == [r.frame for r in full][:n]
    for a, b in zip(early, full):
        np.testing.assert_array_equal(a.logits, b.logits)


def test_only_absences_in_a_row_count_and_a_prompt_ahead_keeps_the_run_going():
    """``EarlyStop`` on made-up scores: a present frame resets the count; the run may end
    only once every object has stopped and none has a conditioning frame ahead."""
    from napari_sam2.engine.object_track import ObjectTrack
    from napari_sam2.engine.propagation import EarlyStop
    from napari_sam2.engine.types import FrameResult

    a, b = ObjectTrack(1), ObjectTrack(2)
    b.cond[9] = object()  # a prompt of object 2 on frame 9
    order = list(range(12))
    stops = EarlyStop([a, b], order, 3)
    scores = {1: [5, -1, -1, 3, -1, -1, -1, 2], 2: [4, -1, -1, -1, 1, 1, 1, 1]}
    done = []
    for i, frame in enumerate(order[:8]):
        active = [t.obj_id for t in stops.active([a, b], frame)]
        ids = [o for o in (1, 2) if o in active]
        stops.update(FrameResult(frame, ids, np.zeros((len(ids), 2, 2), np.float32),
                                 np.array([scores[o][i] for o in ids], np.float32)))
        done.append((frame, ids, stops.finished(i)))
    assert stops.stopped == {1: 6, 2: 3}  # not 1 at frame 4: frame 3 had it again
    assert [ids for _, ids, _ in done] == [[1, 2]] * 4 + [[1]] * 3 + [[]]
    assert not any(end for *_, end in done)  # object 2's prompt on frame 9 lies ahead
    assert [t.obj_id for t in stops.active([a, b], 9)] == [2] and stops.absent[2] == 0
    stops = EarlyStop([a, b], order, None)
    stops.update(FrameResult(0, [1, 2], np.zeros((2, 2, 2), np.float32),
                             np.array([-1, -1], np.float32)))
    assert stops.stopped == {} and not stops.finished(11)
