"""Cached position encodings: the cached tensors equal a fresh computation bit for bit, follow
the model's device and dtype, stay out of the state dict, and let gradients through RoPE."""

import pytest
import torch

from napari_sam2.model import build_model
from napari_sam2.model.position_encoding import (PositionEmbeddingSine, apply_rope,
                                                 axial_rope_tables)
from napari_sam2.model.transformer import RoPEAttention

CPU = torch.device("cpu")


def rope_by_repeat(x, cos, sin):
    """The rotation with the table copied once per block of tokens (the former code)."""
    r = x.shape[-2] // cos.shape[0]
    cos, sin = cos.repeat(r, 1), sin.repeat(r, 1)
    xr = x.float().unflatten(-1, (-1, 2))
    a, b = xr[..., 0], xr[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


def test_sine_cache_is_computed_once_and_equals_a_fresh_map():
    pe = PositionEmbeddingSine(64)
    first = pe.encoding(16, 16, CPU)
    assert pe.encoding(16, 16, CPU) is first
    assert torch.equal(first, pe._compute(16, 16, CPU))
    half = pe.encoding(16, 16, CPU, torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert pe.encoding(16, 16, CPU, torch.bfloat16) is half
    assert torch.equal(half, pe._compute(16, 16, CPU).to(torch.bfloat16))
    other = pe.encoding(8, 12, CPU)
    assert other.shape == (64, 8, 12) and torch.equal(other, pe._compute(8, 12, CPU))


def test_sine_forward_follows_the_input_dtype():
    pe = PositionEmbeddingSine(32)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        out = pe(torch.zeros(2, 5, 8, 8, dtype=dtype))
        assert out.dtype == dtype and out.shape == (2, 32, 8, 8)
        assert torch.equal(out[1], pe._compute(8, 8, CPU).to(dtype))


@pytest.mark.parametrize("r", [1, 3, 7])
def test_rope_broadcast_equals_repeated_tables(r):
    torch.manual_seed(r)
    cos, sin = axial_rope_tables(32, 8, 10000.0, CPU)
    x = torch.randn(2, 2, r * 64, 32)
    assert torch.equal(apply_rope(x, cos, sin), rope_by_repeat(x, cos, sin))
    # the leading-keys slice of the cross-attention (object pointers excluded) is a view
    xs = torch.randn(1, 1, r * 64 + 5, 32)[:, :, : r * 64]
    assert torch.equal(apply_rope(xs, cos, sin), rope_by_repeat(xs, cos, sin))
    with pytest.raises(ValueError, match="not a multiple"):
        apply_rope(torch.randn(1, 1, 65, 32), cos, sin)


def test_rope_gradients_equal_those_of_repeated_tables():
    cos, sin = axial_rope_tables(16, 4, 10000.0, CPU)
    x = torch.randn(1, 1, 3 * 16, 16)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(1, 1, 3 * 16, 16)
    (apply_rope(x1, cos, sin) * w).sum().backward()
    (rope_by_repeat(x2, cos, sin) * w).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def test_rope_attention_runs_in_float64_and_under_bf16_autocast():
    torch.manual_seed(0)
    att = RoPEAttention(32, 1, rope_k_repeat=True, kv_in_dim=16)
    q, mem = torch.randn(1, 64, 32), torch.randn(1, 2 * 64 + 4, 16)
    ref = att(q, mem, mem, num_k_exclude_rope=4)
    att64 = att.double()
    out = att64(q.double(), mem.double(), mem.double(), num_k_exclude_rope=4)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), ref, rtol=1e-5, atol=1e-5)
    att.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = att(q, mem, mem, num_k_exclude_rope=4)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, rtol=0.1, atol=0.1)


def test_model_caches_stay_out_of_the_state_dict_and_follow_dtype():
    torch.manual_seed(0)
    model = build_model("sam2_demo")
    keys = set(model.state_dict())
    with torch.inference_mode():
        feats = model.encode_image(torch.randn(1, 3, 256, 256))
    assert set(model.state_dict()) == keys
    fresh = build_model("sam2_demo")
    fresh.load_state_dict(model.state_dict(), strict=True)  # caches filled on one side only
    neck_pe = model.image_encoder.neck.position_encoding
    dense = model.dense_pe()
    assert model.dense_pe() is dense
    assert torch.equal(feats.vision_pos_enc[0], neck_pe._compute(16, 16, CPU))
    model.double()
    with torch.inference_mode():
        feats64 = model.encode_image(torch.randn(1, 3, 256, 256, dtype=torch.float64))
    assert feats64.vision_pos_enc.dtype == torch.float64
    assert torch.equal(feats64.vision_pos_enc[0], neck_pe._compute(16, 16, CPU).double())
    # the prompt encoder's dense PE is float32 by design; moving the weights recomputes it
    dense64 = model.dense_pe()
    assert dense64 is not dense and dense64.dtype == torch.float32
    pe_layer = model.sam_prompt_encoder.pe_layer
    assert torch.equal(dense64, pe_layer.dense(16, 16).unsqueeze(0))
