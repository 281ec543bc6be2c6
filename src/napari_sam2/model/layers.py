"""Small shared building blocks: MLP, LayerNorm2d, a dropout that is fast on CPU, attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "Dropout", "LayerNorm2d", "attention", "blocked_attention", "dropout"]

_INT64_MIN = torch.iinfo(torch.int64).min


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout (zero with probability ``p``, scale the rest by 1 / (1 - p)).

    On CPU the keep mask comes from raw 64-bit random words, four 16-bit lanes each (``p`` is
    rounded to a multiple of 1/65536), about 5x faster than ``torch.bernoulli``: in training
    steps on CPU, Bernoulli draws for memory attention were a fifth of a video step. Other
    devices use ``F.dropout``. Same seed, same mask (the default generator is used).
    """
    if not training or p <= 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    if p >= 1:
        return torch.zeros_like(x)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(_INT64_MIN, None)
    lanes = words.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    keep = lanes >= (-32768 + round(p * 65536))
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              dropout_p: float = 0.0) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (q (B, nh, Nq, hd), k and v (B, nh, Nk, hd) ->
    (B, nh, Nq, hd)), computed in float32 when bfloat16 tensors are on the CPU.

    Under CPU bfloat16 autocast the projections arrive in bfloat16, and torch's CPU attention
    kernel is slower in bfloat16 than in float32 (1.4x on AVX512-BF16 Zen 4, torch 2.13),
    so there the attention runs in float32 (also more exact) and returns bfloat16. Float32
    inputs and other devices go straight to the fused kernel.
    """
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                             dropout_p=dropout_p)
        return out.to(torch.bfloat16)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    """[start, end) spans of ``size`` over range(n); a last span under size/2 joins the one
    before it (28,736 keys in blocks of 1024: 27 of 1024 and one of 1088)."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < size // 2:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def blocked_attention(q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, *,
                      query_block: int = 1024, key_block: int = 1024) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v block by block: q (..., Nq, d), the keys channels first
    k_t (..., d, Nk) (k transposed, each block reads a slab of it), v (..., Nk, dv) ->
    (..., Nq, dv); leading dims broadcast (v may be shared by the heads).

    For values narrower than the queries, which torch's fused CPU kernel does not take (it
    needs equal widths, and its fallback holds the whole Nq x Nk score matrix). Each block
    of ``query_block`` queries meets the keys ``key_block`` at a time, in one reused buffer
    (4 MiB at the defaults: no page faults, and it stays in cache). The scores of a query
    row are shifted by that row's maximum over the first key block before ``exp``; should a
    later block exceed it by so much that the sums overflow (scores in the hundreds, never
    seen in SAM 2), that query block is redone with a running maximum
    (:func:`_online_softmax_attention`). Same maths as the fused kernel; float32 rounding
    differs by about 1e-7. No dropout: inference only.
    """
    lead = torch.broadcast_shapes(q.shape[:-2], k_t.shape[:-2], v.shape[:-2])
    q3 = q.expand(*lead, *q.shape[-2:]).reshape(-1, *q.shape[-2:])  # (B, Nq, d)
    k_t = k_t.expand(*lead, *k_t.shape[-2:]).reshape(-1, *k_t.shape[-2:])  # (B, d, Nk)
    v3 = v.expand(*lead, *v.shape[-2:]).reshape(-1, *v.shape[-2:])  # (B, Nk, dv)
    B, n_q, d = q3.shape
    q_spans, k_spans = _spans(n_q, query_block), _spans(k_t.shape[2], key_block)
    rows = max(e - s for s, e in q_spans)
    scores_flat = q3.new_empty(B * rows * max(e - s for s, e in k_spans))
    out = q3.new_empty(B, n_q, v3.shape[2])
    for qs, qe in q_spans:
        r = qe - qs
        qb = q3[:, qs:qe] * d ** -0.5
        acc = row_sum = shift = None
        for ks, ke in k_spans:
            weights = scores_flat[:B * r * (ke - ks)].view(B, r, ke - ks)
            torch.bmm(qb, k_t[:, :, ks:ke], out=weights)
            if shift is None:
                shift = weights.amax(dim=2, keepdim=True)
            weights.sub_(shift).exp_()
            if acc is None:
                acc, row_sum = torch.bmm(weights, v3[:, ks:ke]), weights.sum(2, keepdim=True)
            else:
                acc.baddbmm_(weights, v3[:, ks:ke])
                row_sum.add_(weights.sum(2, keepdim=True))
        if not torch.isfinite(row_sum).all():
            acc, row_sum = _online_softmax_attention(qb, k_t, v3, k_spans)
        torch.div(acc, row_sum, out=out[:, qs:qe])
    return out.view(*lead, n_q, out.shape[-1])


def _online_softmax_attention(q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor,
                              k_spans: list[tuple[int, int]]
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k_t) v unnormalised, keeping a running row maximum (FlashAttention's online
    softmax), so no scores overflow: q scaled (B, r, d), k_t (B, d, Nk), v (B, Nk, dv) ->
    (weighted sum (B, r, dv), row sum (B, r, 1)) under the same shift."""
    row_max = acc = row_sum = None
    for ks, ke in k_spans:
        scores = torch.bmm(q, k_t[:, :, ks:ke])
        block_max = scores.amax(dim=2, keepdim=True)
        new_max = block_max if row_max is None else torch.maximum(row_max, block_max)
        weights = scores.sub_(new_max).exp_()
        if acc is None:
            acc, row_sum = weights @ v[:, ks:ke], weights.sum(2, keepdim=True)
        else:
            rescale = (row_max - new_max).exp_()
            acc.mul_(rescale).baddbmm_(weights, v[:, ks:ke])
            row_sum.mul_(rescale).add_(weights.sum(2, keepdim=True))
        row_max = new_max
    return acc, row_sum


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (no parameters: checkpoint keys unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class MLP(nn.Module):
    """``num_layers`` Linear layers with an activation between them (not after the last).

    Parameters are ``layers.{i}.weight/bias`` as in Meta's checkpoints.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        *,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        if self.sigmoid_output:
            x = torch.sigmoid(x)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map (eps 1e-6, as Meta's)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
