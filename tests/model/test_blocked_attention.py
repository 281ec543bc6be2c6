"""Memory attention's cross-attention on CPU: values attended unprojected, by blocks.

``blocked_attention`` must give softmax(q k^T / sqrt(d)) v for any block sizes, widths and
score magnitudes, and ``RoPEAttention`` in eval mode on CPU (which attends to the 64-wide
memory tokens and projects afterwards, above ``fold_min_scores``) must agree with the plain
path it takes in training.
"""

from __future__ import annotations

import pytest
import torch

from napari_sam2.model import build_model
from napari_sam2.model.layers import blocked_attention
from napari_sam2.model.transformer import RoPEAttention


def reference(q, k, v):
    """softmax(q k^T / sqrt(d)) v in float64."""
    q, k, v = q.double(), k.double(), v.double()
    return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1) @ v


@pytest.mark.parametrize("query_block,key_block", [(512, 4096), (7, 13), (1, 1000), (64, 1)])
def test_blocked_attention_matches_softmax_attention(query_block, key_block):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 50, 32, generator=g)
    k = torch.randn(2, 3, 77, 32, generator=g)
    v = torch.randn(2, 1, 77, 8, generator=g)  # narrower than q, shared by the 3 heads
    out = blocked_attention(q, k.mT, v, query_block=query_block, key_block=key_block)
    assert out.shape == (2, 3, 50, 8)
    torch.testing.assert_close(out.double(), reference(q, k, v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spread", [2.0, 30.0])
def test_blocked_attention_is_stable_for_large_scores(spread):
    """A later key block holding larger scores than the first, whose maximum shifts the
    rows: by tens (spread 2, the shifted exponentials grow but stay finite) and by thousands
    (spread 30: they overflow float32, and the query block is redone with a running
    maximum)."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 1, 40, 16, generator=g) * spread
    k = torch.randn(1, 1, 90, 16, generator=g) * spread
    k[..., 70:, :] *= 4  # the largest scores sit in the last key block
    v = torch.randn(1, 1, 90, 5, generator=g)
    out = blocked_attention(q, k.mT, v, query_block=16, key_block=32)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), reference(q, k, v), rtol=1e-5, atol=1e-5)


def test_blocked_attention_matches_torch_fused_kernel_when_widths_agree():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, 300, 64, generator=g) for _ in range(3))
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(blocked_attention(q, k.mT, v, query_block=128, key_block=100),
                               fused, rtol=1e-5, atol=1e-6)


def _cross_attention(num_heads: int, kv_in_dim: int) -> RoPEAttention:
    torch.manual_seed(3)
    attn = RoPEAttention(64, num_heads, rope_k_repeat=True, dropout=0.0, kv_in_dim=kv_in_dim)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.2)  # biases too, so that the folded bias term is exercised
    return attn


@pytest.mark.parametrize("num_heads,kv_in_dim,folds", [(1, 16, True), (2, 16, True),
                                                       (1, 64, False)])
def test_rope_cross_attention_unprojected_values_match_plain_path(num_heads, kv_in_dim, folds):
    attn = _cross_attention(num_heads, kv_in_dim)
    attn.fold_min_scores = 0  # fold at this small size too
    g = torch.Generator().manual_seed(4)
    q = torch.randn(2, 36, 64, generator=g)  # a 6 x 6 grid
    k = torch.randn(2, 3 * 36 + 4, kv_in_dim, generator=g)  # 3 memory frames + 4 pointers
    v = torch.randn(2, 3 * 36 + 4, kv_in_dim, generator=g)
    attn.eval()
    assert attn._folds_values(36, 112, k.device) is folds
    with torch.no_grad():
        eval_out = attn(q, k, v, num_k_exclude_rope=4)
        attn.train()  # dropout 0: the plain path (projected values, torch's fused kernel)
        assert not attn._folds_values(36, 112, k.device)
        plain_out = attn(q, k, v, num_k_exclude_rope=4)
    torch.testing.assert_close(eval_out, plain_out, rtol=1e-5, atol=1e-5)


def test_memory_attention_of_an_official_layout_model_agrees_with_plain_path():
    """sam2.1 tiny's layout (1 head of 256 over 64-wide memories) at a small grid: the whole
    memory attention in eval mode (folded) against the same weights in train mode, dropout 0."""
    model = build_model("sam2.1_hiera_tiny")
    attention = model.memory_attention
    attention.set_dropout(0.0)
    for layer in attention.layers:
        layer.cross_attn_image.fold_min_scores = 0  # fold at this small size too
    g = torch.Generator().manual_seed(5)
    curr, curr_pos = torch.randn(1, 64, 256, generator=g), torch.randn(1, 64, 256, generator=g)
    memory = torch.randn(1, 7 * 64 + 16, 64, generator=g)
    memory_pos = torch.randn(1, 7 * 64 + 16, 64, generator=g)
    with torch.no_grad():
        attention.eval()
        folded = attention(curr, curr_pos, memory, memory_pos, 16)
        attention.train()
        plain = attention(curr, curr_pos, memory, memory_pos, 16)
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-4)
    assert (folded - plain).abs().max() < 1e-4


def test_values_fold_only_above_the_size_where_it_pays():
    """Official tiny at 1024 folds from one memory frame on; sam2_demo (256 queries over at
    most 7 x 256 memory tokens) keeps the plain path."""
    attn = build_model("sam2.1_hiera_tiny").memory_attention.layers[0].cross_attn_image.eval()
    cpu = torch.device("cpu")
    assert attn._folds_values(4096, 4096 + 64, cpu)
    assert not attn._folds_values(256, 7 * 256 + 16, cpu)
