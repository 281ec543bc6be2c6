"""Memory attention's object-independent start (layer 0's self-attention and cross-attention
queries), computed once per frame and shared by every object: the same bits as computing it
per object, in the model and in a whole propagation with the shipped sam2_demo model."""

import numpy as np
import pytest
import torch

from napari_sam2.data.synthetic import make_cell_timelapse
from napari_sam2.engine import propagation
from napari_sam2.engine.device import cpu_has_native_bfloat16
from napari_sam2.engine.session import TrackingSession
from napari_sam2.model import build_model


@pytest.fixture(scope="module")
def demo():
    from napari_sam2.model import load_model

    return load_model("sam2_demo", device="cpu", progress=False)


def _inputs(model, batch: int, frames: int = 3, n_ptr: int = 4):
    cfg = model.config
    h = cfg.feature_size
    g = torch.Generator().manual_seed(0)
    cur = torch.randn(1, cfg.hidden_dim, h, h, generator=g)
    pos = torch.randn(1, cfg.hidden_dim, h, h, generator=g)
    m = frames * h * h + n_ptr
    mem = torch.randn(m, batch, cfg.mem_dim, generator=g)
    mem_pos = torch.randn(m, batch, cfg.mem_dim, generator=g)
    return cur, pos, mem, mem_pos, n_ptr


@pytest.mark.parametrize("name", ["sam2_demo", "sam2.1_hiera_tiny"])
def test_start_gives_the_same_bits_for_one_object(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    cur, pos, mem, mem_pos, n_ptr = _inputs(model, 1, frames=2 if "tiny" in name else 3)
    with torch.inference_mode():
        plain = model.condition_on_memory(cur, pos, mem, mem_pos, n_ptr)
        start = model.memory_attention_start(cur, pos)
        shared = model.condition_on_memory(cur, pos, mem, mem_pos, n_ptr, start=start)
        other = model.condition_on_memory(cur, pos, mem.flip(0), mem_pos, n_ptr, start=start)
    assert torch.equal(plain, shared)
    assert not torch.equal(plain, other)  # the memory still matters after the shared start


def test_start_shared_by_a_batch(demo):
    """B objects in one call (the GPU path) with one start: each row as its own call."""
    cur, pos, mem, mem_pos, n_ptr = _inputs(demo, 3)
    with torch.inference_mode():
        start = demo.memory_attention_start(cur, pos)
        batched = demo.condition_on_memory(cur.expand(3, -1, -1, -1),
                                           pos.expand(3, -1, -1, -1), mem, mem_pos, n_ptr,
                                           start=start)
        rows = [demo.condition_on_memory(cur, pos, mem[:, i:i + 1], mem_pos[:, i:i + 1], n_ptr)
                for i in range(3)]
    torch.testing.assert_close(batched, torch.cat(rows), rtol=1e-5, atol=1e-5)


def test_start_refused_in_training():
    model = build_model("sam2_demo")
    model.train()
    cur, pos, *_ = _inputs(model, 1)
    with pytest.raises(ValueError, match="eval"):
        model.memory_attention_start(cur, pos)


@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=pytest.mark.skipif(
    not cpu_has_native_bfloat16(), reason="bfloat16 autocast needs a CPU with native bf16"))])
def test_propagation_shared_equals_per_object(demo, monkeypatch, bf16):
    """Three cells tracked through 10 frames: every frame's logits and scores bit-identical
    with the start shared and with each object computing its own (float32, and bfloat16
    autocast where the CPU has it)."""
    images, labels = make_cell_timelapse(n_frames=10, shape=(128, 160), n_cells=4, seed=2)
    runs = {}
    for share in (False, True):
        monkeypatch.setattr(propagation, "SHARE_ACROSS_OBJECTS", share)
        s = TrackingSession(demo, images, bfloat16=bf16, read_ahead=0)
        assert s.state.uses_bfloat16 == bf16
        for oid in (1, 2, 3):
            rows, cols = np.nonzero(labels[0] == oid)
            s.add_points(0, oid, [(int(np.median(rows)), int(np.median(cols)))], [1])
        runs[share] = list(s.propagate(0))
    assert len(runs[True]) == 10
    for a, b in zip(runs[False], runs[True]):
        assert a.obj_ids == b.obj_ids == [1, 2, 3]
        assert np.array_equal(a.logits, b.logits)
        assert np.array_equal(a.object_scores, b.object_scores)
    assert any(r.masks.any() for r in runs[True][1:])
