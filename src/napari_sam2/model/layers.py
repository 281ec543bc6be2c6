"""Small shared building blocks: MLP, LayerNorm2d, a dropout that is fast on CPU, attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "LayerNorm2d", "Dropout", "attention", "dropout"]

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
