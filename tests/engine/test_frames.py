"""Frame sources: validation, lazy reads, read-ahead, model-ready inputs; the feature cache."""

import threading
import time

import numpy as np
import pytest
import torch

from napari_sam2.engine.feature_cache import FeatureCache, FrameFeatures
from napari_sam2.engine.frames import ArrayFrames, ModelInputFrames


class CountingArray:
    """A numpy array that records which frames were read (along axis 0)."""

    def __init__(self, data):
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads: list[int] = []
        self._lock = threading.Lock()

    def __getitem__(self, key):
        with self._lock:
            self.reads.append(key[0] if isinstance(key, tuple) else key)
        return self.data[key]


def test_validation_messages():
    with pytest.raises(ValueError, match="shape"):
        ArrayFrames(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="shape"):
        ArrayFrames(np.zeros((2, 4, 5, 4)))  # RGBA stack
    with pytest.raises(ValueError, match="out of range"):
        ArrayFrames(np.zeros((2, 4, 5)), axis=3)
    with pytest.raises(ValueError, match="channel axis"):
        ArrayFrames(np.zeros((2, 4, 5, 3)), axis=3)
    with pytest.raises(ValueError, match="empty"):
        ArrayFrames(np.zeros((0, 4, 5)))
    with pytest.raises(ValueError, match="empty"):
        ArrayFrames([])
    with pytest.raises(TypeError):
        ArrayFrames(42)


def test_axis_and_rgb():
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    src = ArrayFrames(data, axis=1, read_ahead=0)
    assert src.num_frames == 3 and src.frame_shape == (2, 4)
    np.testing.assert_array_equal(src.read(1), data[:, 1])
    rgb = ArrayFrames(np.zeros((5, 6, 7, 3), np.uint16), axis=-4)
    assert rgb.is_rgb and rgb.frame_shape == (6, 7) and len(rgb) == 5
    with pytest.raises(ValueError, match="out of range"):
        src.read(3)
    with pytest.raises(TypeError):
        src.read(1.0)


def test_bad_frames_raise_on_read():
    frames = [np.zeros((4, 5)), np.zeros((4, 6))]
    src = ArrayFrames(frames, read_ahead=0)
    src.read(0)
    with pytest.raises(ValueError, match="same size"):
        src.read(1)
    data = np.zeros((3, 4, 5), np.float32)
    data[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"frame 2 contains 1 NaN .*nan_to_num"):
        ArrayFrames(data, read_ahead=0).read(2)


def test_reads_are_lazy_and_read_ahead_follows_direction():
    arr = CountingArray(np.random.default_rng(0).integers(0, 255, (20, 8, 9), np.uint8))
    src = ArrayFrames(arr, read_ahead=2)
    assert arr.reads == []  # nothing read on construction
    np.testing.assert_array_equal(src.read(10, direction=-1), arr.data[10])
    deadline = time.time() + 5
    while len(arr.reads) < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert sorted(arr.reads) == [8, 9, 10]  # two frames ahead, going backwards
    np.testing.assert_array_equal(src.read(9, direction=-1), arr.data[9])  # from read-ahead
    src.close()
    assert arr.reads.count(9) == 1


def test_model_input_frames():
    imgs = torch.randn(3, 3, 32, 32)
    src = ModelInputFrames(imgs, (20, 30))
    assert src.num_frames == 3 and src.frame_shape == (20, 30)
    x = src.model_input(1, 1, image_size=32, device="cpu")
    assert torch.equal(x, imgs[1:2])
    with pytest.raises(ValueError):
        src.model_input(1, 1, image_size=64, device="cpu")
    with pytest.raises(ValueError):
        ModelInputFrames(torch.randn(3, 32, 32), (20, 30))
    with pytest.raises(ValueError):
        ModelInputFrames(imgs, (0, 30))


def _feats(n_bytes_each):
    return FrameFeatures(torch.zeros(n_bytes_each // 4), ())


def test_feature_cache_is_lru_and_bounded():
    cache = FeatureCache(300)
    for k in range(3):
        cache.put(k, _feats(100))
    assert cache.keys() == [0, 1, 2] and cache.nbytes == 300
    cache.get(0)  # 0 becomes the most recent
    cache.put(3, _feats(100))
    assert cache.keys() == [2, 0, 3]
    cache.put(4, _feats(400))  # larger than the bound: not stored
    assert 4 not in cache
    cache.clear()
    assert cache.nbytes == 0 and cache.keys() == []


def test_feature_cache_without_eviction_only_fills_free_room():
    cache = FeatureCache(300)
    cache.put(0, _feats(100))
    cache.put(1, _feats(100), evict=False)  # fits beside 0
    cache.put(2, _feats(100), evict=False)
    cache.put(3, _feats(100), evict=False)  # full: not stored, nothing dropped
    assert cache.keys() == [0, 1, 2] and cache.nbytes == 300
    computed = []
    item = cache.get_or_compute(4, lambda: computed.append(4) or _feats(100), evict=False)
    assert computed == [4] and item.nbytes == 100 and 4 not in cache
    cache.put(3, _feats(100))  # the default still evicts the least recently used
    assert cache.keys() == [1, 2, 3]


def test_feature_cache_computes_once_across_threads():
    cache = FeatureCache(1 << 20)
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.05)
        return _feats(100)

    threads = [threading.Thread(target=cache.get_or_compute, args=(7, compute)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and 7 in cache
