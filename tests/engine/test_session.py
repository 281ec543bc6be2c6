"""TrackingSession on a small random-init model (sam2_demo): bookkeeping and semantics."""

import threading

import numpy as np
import pytest
import torch

from napari_sam2.engine.session import TrackingSession
from napari_sam2.model import build_model

T, H, W = 6, 40, 48


class CountingArray:
    """A numpy array that records how often it is indexed (lazy-read checks)."""

    def __init__(self, data):
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads = 0
        self._lock = threading.Lock()

    def __getitem__(self, key):
        with self._lock:
            self.reads += 1
        return self.data[key]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("sam2_demo").eval()


@pytest.fixture(scope="module")
def frames():
    """A bright disk moving right over a noisy background, uint16."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    out = rng.integers(0, 2000, (T, H, W)).astype(np.uint16)
    for t in range(T):
        out[t][(yy - 20) ** 2 + (xx - 12 - 3 * t) ** 2 < 49] += 30000
    return out


@pytest.fixture(scope="module")
def cache(model, frames):
    """Features of ``frames`` (default intensity mapping), encoded once for the module."""
    s = TrackingSession(model, frames)
    for f in range(T):
        s.encode_frame(f)
    return s.feature_cache


def _session(model, frames, cache, **kw):
    return TrackingSession(model, frames, feature_cache=cache, **kw)


def _run(session, **kw):
    return {r.frame: r for r in session.propagate(**kw)}


def _same(a, b, atol=1e-5):
    assert a.obj_ids == b.obj_ids
    np.testing.assert_allclose(a.logits, b.logits, atol=atol, rtol=0)


def test_prompt_and_propagate_forward_and_reverse(model, frames, cache):
    s = _session(model, frames, cache)
    r = s.add_points(2, 1, [[20, 18]], [1])
    assert r.frame == 2 and r.obj_ids == [1] and r.logits.shape == (1, H, W)
    assert r.logits.dtype == np.float32 and r.masks.dtype == bool
    fwd = _run(s)
    assert list(fwd) == list(range(2, T))  # from the earliest conditioning frame
    rev = _run(s, start=T - 1, reverse=True)
    assert list(rev) == list(range(T - 1, -1, -1))
    assert s.frames_with_output(1) == list(range(T))
    assert s.conditioning_frames(1) == [2]
    np.testing.assert_array_equal(rev[2].logits, r.logits)  # conditioning frame reused
    # max_frames = frames beyond start, as Meta's max_frame_num_to_track
    assert list(_run(s, start=3, max_frames=2)) == [3, 4, 5]
    assert list(_run(s, start=3, max_frames=0)) == [3]
    assert list(_run(s, start=3, reverse=True, max_frames=2)) == [3, 2, 1]
    assert list(_run(s, start=1, reverse=True, max_frames=5)) == [1, 0]
    assert list(_run(s, start=T - 2, max_frames=5)) == [T - 2, T - 1]
    assert list(_run(s, start=0, reverse=True)) == []  # nothing before frame 0


def test_dask_and_zarr_read_lazily_and_match_numpy(model, frames):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    counting = CountingArray(frames)
    lazy = da.from_array(counting, chunks=(1, H, W))
    z = zarr.create_array(store={}, shape=frames.shape, chunks=(1, H, W), dtype=frames.dtype)
    z[:] = frames
    ref = TrackingSession(model, frames, read_ahead=0)
    ref.add_points(0, 1, [[20, 12]], [1])
    expected = _run(ref, max_frames=2)
    for source in (lazy, z):
        s = TrackingSession(model, source, read_ahead=1)
        s.add_points(0, 1, [[20, 12]], [1])
        got = _run(s, max_frames=2)
        for f in expected:
            _same(got[f], expected[f], atol=0)
    assert 0 < counting.reads <= 4 + 1  # frames 0..2 and one read ahead, never all


def test_cancel_mid_stream_then_continue(model, frames, cache):
    full = _session(model, frames, cache)
    full.add_points(0, 1, [[20, 12]], [1])
    expected = _run(full)
    s = _session(model, frames, cache)
    s.add_points(0, 1, [[20, 12]], [1])
    gen = s.propagate()
    got = {next(gen).frame: None for _ in range(3)}
    gen.close()
    assert list(got) == [0, 1, 2] and s.frames_with_output(1) == [0, 1, 2]
    rest = _run(s, start=3)
    assert list(rest) == list(range(3, T))
    for f in rest:
        _same(rest[f], expected[f], atol=0)


def test_objects_are_independent_remove_and_add_later(model, frames, cache):
    solo = _session(model, frames, cache)
    solo.add_points(0, 1, [[20, 12]], [1])
    alone = _run(solo)
    s = _session(model, frames, cache)
    s.add_points(0, 1, [[20, 12]], [1])
    first = _run(s)
    s.add_box(3, 2, (5, 30, 15, 45))  # a second object after the propagation
    assert s.obj_ids == [1, 2]
    both = _run(s)
    assert both[0].obj_ids == [1, 2]  # object 2 tracked before its prompt (future memory)
    for f in range(T):
        _same(both[f], alone[f].__class__(f, [1, 2], np.concatenate(
            [alone[f].logits, both[f].logits[1:]]), both[f].object_scores))
        np.testing.assert_allclose(first[f].logits, alone[f].logits, atol=1e-5)
    only2 = _run(s, obj_ids=[2])
    assert all(r.obj_ids == [2] for r in only2.values())
    s.remove_object(2)
    assert s.obj_ids == [1]
    with pytest.raises(ValueError, match="unknown object"):
        s.remove_object(2)
    assert _run(s)[4].obj_ids == [1]


def test_clear_frame_and_reset(model, frames, cache):
    s = _session(model, frames, cache)
    s.add_points(0, 1, [[20, 12]], [1])
    s.add_points(4, 1, [[20, 24]], [1])
    _run(s)
    assert s.conditioning_frames(1) == [0, 4] and s.prompt_frames(1) == [0, 4]
    s.clear_frame(4, 1)
    assert s.conditioning_frames(1) == [0] and s.prompt_frames(1) == [0]
    assert 4 in s.frames_with_output(1)  # downgraded to a tracked output
    s.clear_frame(0)
    with pytest.raises(ValueError, match="no prompts"):
        s.propagate()
    s.reset()
    assert s.obj_ids == []
    with pytest.raises(ValueError, match="no objects"):
        s.propagate()


@pytest.mark.parametrize("as_cond", [True, False])
def test_corrections_survive_only_as_conditioning(model, frames, cache, as_cond):
    s = _session(model, frames, cache, corrections_as_conditioning=as_cond)
    s.add_points(0, 1, [[20, 12]], [1])
    before = _run(s)
    corrected = s.add_points(4, 1, [[20, 24], [5, 5]], [1, 0])
    assert not np.allclose(corrected.logits, before[4].logits)
    after = _run(s)
    assert (4 in s.conditioning_frames(1)) == as_cond
    if as_cond:
        np.testing.assert_array_equal(after[4].logits, corrected.logits)
    else:  # Meta's default: the next propagation recomputes (and so discards) frame 4
        _same(after[4], before[4], atol=0)


def test_eviction_then_reprompt_is_exact(model, frames, cache):
    """Memories evicted with a tiny window are recomputed bit for bit (features re-encoded,
    memories re-encoded from the stored logits) and give the never-evicting results."""
    results = []
    for window in (1, 100):
        kw = {} if window == 1 else {"feature_cache": cache}
        s = TrackingSession(model, frames, memory_window=window, **kw)
        s.add_points(0, 1, [[20, 12]], [1])
        s.add_points(1, 2, [[30, 30]], [1])
        _run(s)
        if window == 1:
            assert s.memory_stats()["memories"] <= 2 * 3  # cond frames + a 1-frame window
        results.append((s.add_points(4, 1, [[20, 24]], [0]), _run(s, start=2)))
    (ca, pa), (cb, pb) = results
    np.testing.assert_array_equal(ca.logits, cb.logits)
    for f in pa:
        np.testing.assert_array_equal(pa[f].logits, pb[f].logits)


def test_encode_frame_from_threads(model, frames):
    counting = CountingArray(frames)
    s = TrackingSession(model, counting, read_ahead=0)
    threads = [threading.Thread(target=s.encode_frame, args=(3,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting.reads == 1 and 3 in s.feature_cache
    s.add_points(3, 1, [[20, 21]], [1])
    assert counting.reads == 1  # the click used the cached features
    s.set_intensity_range((0, 40000))
    assert s.feature_cache.keys() == [] and s.obj_ids == [1]


def test_bad_inputs_leave_session_unchanged(model, frames):
    bad = frames.astype(np.float32)
    bad[4, 3, 3] = np.nan
    s = TrackingSession(model, bad)
    s.add_points(0, 1, [[20, 12]], [1])
    state = (s.obj_ids, s.frames_with_output(1), s.prompt_frames(1))
    with pytest.raises(ValueError, match="out of range"):
        s.add_points(T, 1, [[20, 12]], [1])
    with pytest.raises(ValueError, match="outside"):
        s.add_points(1, 2, [[H + 5, 12]], [1])
    with pytest.raises(ValueError):
        s.add_points(1, 2, [[20, 12]], [1, 1])
    with pytest.raises(TypeError):
        s.add_points(1, "a", [[20, 12]], [1])
    with pytest.raises(ValueError, match="box must come first"):
        s.add_points(1, 1, [[20, 12]], [1], clear=False, box=(1, 1, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        s.add_mask(1, 2, np.zeros((H, W + 1), bool))
    with pytest.raises(ValueError, match="NaN"):
        s.add_points(4, 2, [[20, 12]], [1])
    with pytest.raises(ValueError, match="unknown object"):
        s.propagate(obj_ids=[7])
    with pytest.raises(ValueError, match="max_frames"):
        s.propagate(max_frames=-1)
    assert (s.obj_ids, s.frames_with_output(1), s.prompt_frames(1)) == state
    with pytest.raises(ValueError, match="NaN"):
        _run(s)  # stops at the bad frame; frames before it are kept
    assert s.frames_with_output(1) == list(range(4))
    shapes = [np.zeros((H, W), np.uint8)] * 3 + [np.zeros((H, W + 2), np.uint8)]
    s2 = TrackingSession(model, shapes)
    s2.add_points(0, 1, [[20, 12]], [1])
    with pytest.raises(ValueError, match="same size"):
        _run(s2)


def test_mask_prompt(model, frames, cache):
    s = _session(model, frames, cache)
    mask = np.zeros((H, W), bool)
    mask[14:27, 6:19] = True
    r = s.add_mask(0, 3, mask)
    assert r.obj_ids == [3] and r.object_scores[0] == 10.0
    # the mask is taken as the output (IoU over the object, not accuracy over the frame,
    # where a mask that lost half its pixels would still score 0.95)
    iou = (r.masks[0] & mask).sum() / (r.masks[0] | mask).sum()
    assert iou > 0.95, iou
    assert s.prompt_frames(3) == [0]
    assert list(_run(s, max_frames=1)) == [0, 1]


def test_second_propagation_reads_no_frame_again(model, frames):
    """Frames a propagation encoded stay cached while there is room, so running it again
    (e.g. after a correction) reads and encodes no frame a second time, and gives the same
    masks; with a cache too small for them, nothing the user clicked is evicted."""
    counting = CountingArray(frames)
    s = TrackingSession(model, counting, read_ahead=0)
    s.add_points(0, 1, [[20, 12]], [1])
    first = _run(s)
    reads = counting.reads
    assert reads == T  # each frame read once: frame 0 for the click, the rest by propagation
    second = _run(s)
    assert counting.reads == reads
    for f in first:
        np.testing.assert_array_equal(first[f].logits, second[f].logits)

    one_frame = s.feature_cache.get(0).nbytes
    small = TrackingSession(model, frames, read_ahead=0, feature_cache_bytes=2 * one_frame)
    small.add_points(3, 1, [[20, 21]], [1])
    _run(small)
    assert 3 in small.feature_cache  # the clicked frame was not pushed out
