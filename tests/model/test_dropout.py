"""The CPU-fast dropout: Bernoulli keep rate, inverted scaling, seeding, and the explicit
attention path it uses in training equals the fused kernel when nothing is dropped."""

import pytest
import torch
import torch.nn.functional as F

from napari_sam2.model.layers import Dropout, dropout
from napari_sam2.model.transformer import RoPEAttention


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_scaling_and_seed(p):
    x = torch.ones(200_001)  # odd size: the last 64-bit word is only partly used
    torch.manual_seed(3)
    y = dropout(x, p)
    kept = y != 0
    n = x.numel()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    torch.manual_seed(3)
    assert torch.equal(dropout(x, p), y)
    # the 16-bit lanes of one 64-bit word are independent: no lane is biased
    lanes = kept[: n // 4 * 4].view(-1, 4).float().mean(0)
    assert (lanes - (1 - p)).abs().max() < 5 * (4 * p * (1 - p) / n) ** 0.5


def test_eval_mode_and_p_zero_are_identity():
    x = torch.randn(3, 5)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    layer = Dropout(0.3).eval()
    assert layer(x) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_training_attention_path_matches_the_fused_kernel():
    torch.manual_seed(0)
    attn = RoPEAttention(32, 1, dropout=0.1, kv_in_dim=16, rope_k_repeat=True).train()
    q = torch.randn(2, 16, 32)
    kv = torch.randn(2, 40, 16)
    qh, kh, vh = (attn._heads(attn.q_proj(q)), attn._heads(attn.k_proj(kv)),
                  attn._heads(attn.v_proj(kv)))
    attn.dropout_p = 1e-9  # explicit path taken, p rounds to 0 lanes dropped
    explicit = attn._attend(qh, kh, vh)
    fused = attn.out_proj(F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).flatten(2))
    assert torch.allclose(explicit, fused, atol=1e-5)
    attn.dropout_p = 0.5  # and it does drop in training
    assert not torch.allclose(attn._attend(qh, kh, vh), fused, atol=1e-3)
