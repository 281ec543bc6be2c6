"""Tracked outputs over the RAM bound (``outputs_ram_bytes``) spill to a temporary directory and
come back bit for bit: sam2_demo on a synthetic cell time-lapse, propagation + correction +
re-propagation, compared with an unbounded session."""

import gc
import os

import numpy as np
import pytest
import torch

from napari_sam2.data.synthetic import make_cell_timelapse
from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.spilled_outputs import OutputSpill

N_FRAMES = 10


@pytest.fixture(scope="module")
def model(shipped_demo_model):
    return shipped_demo_model


@pytest.fixture(scope="module")
def movie():
    frames, labels = make_cell_timelapse(n_frames=N_FRAMES, shape=(96, 96), n_cells=3, seed=2)
    return frames, labels


@pytest.fixture(scope="module")
def cache(model, movie):
    s = TrackingSession(model, movie[0])
    for f in range(s.num_frames):
        s.encode_frame(f)
    return s.feature_cache


def _session(model, frames, *, ram_bytes, keep_per_object=0, **kwargs):
    """A session with ``outputs_ram_bytes=ram_bytes``; ``keep_per_object=0`` lifts the floor
    of what one step reads (17 per object), so that even the latest frames spill."""
    s = TrackingSession(model, frames, outputs_ram_bytes=ram_bytes, **kwargs)
    s.state.spill.keep_per_object = keep_per_object
    return s


def _centre(labels, frame, k):
    rows, cols = np.nonzero(labels[frame] == k)
    return [[int(np.median(rows)), int(np.median(cols))]]


def _run(model, movie, cache, ram_bytes):
    """Clicks on frame 3, forward and backward propagation, a correction on frame 6 and a
    re-propagation from it; returns the session and every streamed result."""
    frames, labels = movie
    s = _session(model, frames, feature_cache=cache, ram_bytes=ram_bytes)
    ids = [k for k in np.unique(labels[3]) if k][:2]
    for k in ids:
        s.add_points(3, int(k), _centre(labels, 3, k), [1])
    results = list(s.propagate(3)) + list(s.propagate(3, reverse=True))
    s.add_points(6, int(ids[0]), _centre(labels, 6, ids[0]), [1])
    results += list(s.propagate(6))
    results += list(s.propagate(0))  # reads far outputs again (spilled ones included)
    return s, results


def _stored(s):
    """Every object's stored output on every frame, as numpy arrays."""
    out = {}
    with s.state.lock:
        for oid, track in s.state.tracks.items():
            for f in track.frames_with_output():
                o = track.output(f)
                out[oid, f] = (o.low_res.float().numpy(), o.obj_ptr.float().numpy(),
                               o.score.float().numpy(), o.low_res.dtype, o.from_prompt)
    return out


def _assert_same_stored(ref, spl):
    sa, sb = _stored(ref), _stored(spl)
    assert sa.keys() == sb.keys()
    for key in sa:
        for x, y in zip(sa[key], sb[key], strict=True):
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y)
            else:
                assert x == y


@pytest.fixture(scope="module")
def runs(model, movie, cache):
    return _run(model, movie, cache, None), _run(model, movie, cache, 0)


def test_spilled_session_is_bit_identical(runs):
    (ref, ref_results), (spl, spl_results) = runs
    assert spl.memory_stats()["spilled"] > 0  # spilling really happened
    assert spl.state.spill.reads > 0  # and spilled outputs were read back
    assert ref.memory_stats()["spilled"] == 0
    assert len(ref_results) == len(spl_results)
    for a, b in zip(ref_results, spl_results):
        assert a.frame == b.frame and a.obj_ids == b.obj_ids
        np.testing.assert_array_equal(a.logits, b.logits)
        np.testing.assert_array_equal(a.object_scores, b.object_scores)
    _assert_same_stored(ref, spl)


def test_ram_bound_holds_and_conditioning_outputs_stay(runs, model):
    _, (spl, _) = runs
    spill = spl.state.spill
    per = (model.config.image_size // 4) ** 2 * 2  # float16 logits of one output
    assert spill.ram <= per + 4096  # budget 0: only the most recently used one stays
    with spl.state.lock:
        for track in spl.state.tracks.values():
            assert track.cond  # clicks and the correction
            assert not set(track.cond) & set(track.non_cond.spilled_frames)
            spilled = track.non_cond.spilled_frames
            assert spilled and all(
                os.path.exists(os.path.join(spill.directory, f"{track.non_cond._uid}-{f}.bin"))
                for f in spilled)
    stats = spl.memory_stats()
    assert stats["spilled"] == spill.spilled > 0


def test_bound_in_bytes(model, movie, cache):
    """A budget of a few outputs keeps that many in RAM, the rest on disk, all readable."""
    frames, labels = movie
    per = (model.config.image_size // 4) ** 2 * 2 + model.config.hidden_dim * 4 + 4
    s = _session(model, frames, feature_cache=cache, ram_bytes=3 * per)
    k = int([k for k in np.unique(labels[0]) if k][0])
    s.add_points(0, k, _centre(labels, 0, k), [1])
    list(s.propagate(0))
    track = s.state.track(k)
    assert s.state.spill.ram <= 3 * per
    assert len(track.non_cond.spilled_frames) == N_FRAMES - 1 - 3
    assert len(track.frames_with_output()) == N_FRAMES
    assert all(track.output(f).low_res.dtype == torch.float16 for f in range(1, N_FRAMES))
    assert s.state.spill.ram <= 3 * per  # reading back spills others


def test_what_a_step_reads_stays_in_ram(model):
    """By default the last ``lookback`` (17) outputs of each object never spill, whatever the
    budget: a propagation reads nothing back from disk."""
    frames, labels = make_cell_timelapse(n_frames=24, shape=(96, 96), n_cells=2, seed=2)
    s = TrackingSession(model, frames, outputs_ram_bytes=0)
    assert s.state.spill.keep_per_object == 17 and s.outputs_ram_bytes == 0
    k = int([k for k in np.unique(labels[0]) if k][0])
    s.add_points(0, k, _centre(labels, 0, k), [1])
    list(s.propagate(0))
    assert s.state.spill.reads == 0
    track = s.state.track(k)
    assert sorted(f for f, _ in track.non_cond.resident_items()) == list(range(7, 24))
    assert track.non_cond.spilled_frames == list(range(1, 7))
    s.outputs_ram_bytes = None  # unbounded from now on: what is read back stays in RAM
    s.add_points(2, k, _centre(labels, 2, k), [1])
    list(s.propagate(2, max_frames=2))
    assert s.state.spill.reads > 0
    assert track.non_cond.spilled_frames == [5, 6]  # frames 1..4 were read back or recomputed


def test_directory_goes_with_reset_and_garbage_collection(model, movie, cache):
    frames, labels = movie
    k = int([k for k in np.unique(labels[0]) if k][0])

    def spilled_session():
        s = _session(model, frames, feature_cache=cache, ram_bytes=0)
        s.add_points(0, k, _centre(labels, 0, k), [1])
        list(s.propagate(0, max_frames=4))
        d = s.state.spill.directory
        tracked = len(s.state.track(k).non_cond)
        assert tracked >= 3 and d is not None
        assert len(os.listdir(d)) == tracked - 1  # the most recently used one stays in RAM
        return s, d

    s, d = spilled_session()
    s.remove_object(k)  # the object's files go with it
    assert os.listdir(d) == [] and s.state.spill.spilled == 0 == s.state.spill.ram
    s, d = spilled_session()
    s.reset()
    assert not os.path.exists(d) and s.state.spill.directory is None
    s, d = spilled_session()
    del s
    gc.collect()
    assert not os.path.exists(d)


def test_windows_spill_bit_identical(model, movie):
    """With windows each output carries its window and window-sized logits: both come back."""
    frames, labels = movie
    k = int([k for k in np.unique(labels[0]) if k][0])

    def run(ram_bytes):
        s = _session(model, frames, window=64, ram_bytes=ram_bytes)
        s.add_points(0, k, _centre(labels, 0, k), [1])
        results = list(s.propagate(0, max_frames=5))
        s.add_points(3, k, _centre(labels, 3, k), [1])
        return s, results + list(s.propagate(3, max_frames=3))

    (ref, a), (spl, b) = run(None), run(0)
    assert spl.state.spill.reads > 0
    for x, y in zip(a, b, strict=True):
        assert x.windows == y.windows is not None
        for lx, ly in zip(x.logits, y.logits, strict=True):
            np.testing.assert_array_equal(lx, ly)
    _assert_same_stored(ref, spl)
    with spl.state.lock:
        track, ref_track = spl.state.track(k), ref.state.track(k)
        assert all(track.output(f).window == ref_track.output(f).window for f in range(6))


def test_budget_is_checked():
    with pytest.raises(ValueError, match="outputs_ram_bytes"):
        OutputSpill(-1)
    with pytest.raises(ValueError, match="outputs_ram_bytes"):
        OutputSpill(1.5)
