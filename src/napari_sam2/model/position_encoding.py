"""Position encodings: 2-D sine (FPN neck, memories), random Fourier (prompts), axial RoPE.

All three are computed in float32. The sine maps and RoPE tables are pure functions of the
grid size, so they are cached (sine maps per (size, device, dtype), each dtype being the
float32 map cast once; RoPE tables per (size, device)). Keys of several memory frames are
rotated by broadcasting the one-frame tables, never by a repeated copy of them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine", "PositionEmbeddingRandom", "axial_rope_tables",
           "apply_rope", "apply_rope_channels_first", "sine_1d"]


class PositionEmbeddingSine(nn.Module):
    """DETR-style normalised 2-D sine encoding with ``num_pos_feats`` output channels.

    For an H x W map: y = row/(H+1e-6)*2pi with row in 1..H (x likewise); channel pairs
    alternate sin/cos with divisor temperature^(2*floor(i/2)/F), F = num_pos_feats/2;
    channels are [y part (F), x part (F)]. No parameters.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        # plain attribute, not a buffer: not in the state dict, and keyed by device and dtype
        self._cache: dict[tuple, torch.Tensor] = {}

    def encoding(self, h: int, w: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(C, h, w) encoding in ``dtype``: computed in float32, then cast (cached; do not
        modify in place)."""
        key = (h, w, str(device), dtype)
        pe = self._cache.get(key)
        if pe is None:
            # a normal tensor even when first asked for under inference_mode (training later)
            with torch.inference_mode(False), torch.no_grad():
                pe = self.encoding(h, w, device) if dtype != torch.float32 else None
                pe = self._compute(h, w, device) if pe is None else pe.to(dtype)
            self._cache[key] = pe
        return pe

    def _compute(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        f = self.num_pos_feats // 2
        scale, eps = 2 * math.pi, 1e-6
        y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        y = y / (y[-1:] + eps) * scale
        x = x / (x[-1:] + eps) * scale
        dim_t = torch.arange(f, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / f)
        py = y[:, None] / dim_t  # (h, F)
        px = x[:, None] / dim_t  # (w, F)
        py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
        px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
        pe = torch.cat((py[:, None, :].expand(h, w, f), px[None, :, :].expand(h, w, f)), dim=2)
        return pe.permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *, H, W) -> (B, num_pos_feats, H, W) in x's dtype (a broadcast view)."""
        pe = self.encoding(x.shape[-2], x.shape[-1], x.device, x.dtype)
        return pe.unsqueeze(0).expand(x.shape[0], -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier encoding of normalised (x, y) coordinates (the prompt encoder's PE).

    The buffer ``positional_encoding_gaussian_matrix`` (2, C/2) is part of the checkpoint.
    """

    def __init__(self, num_pos_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) in [0, 1] -> (..., C): [sin(2pi(2p-1)G), cos(2pi(2p-1)G)]."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix.to(coords.dtype)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, h: int, w: int) -> torch.Tensor:
        """(C, h, w) encoding of the cell centres of an h x w grid."""
        g = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, device=g.device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=g.device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)), dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: int) -> torch.Tensor:
        """(B, N, 2) x, y in pixels of an image_size square -> (B, N, C)."""
        return self._pe_encoding(coords.to(torch.float32) / image_size)


def sine_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(P,) positions -> (P, dim) 1-D sine encoding, layout [sin (dim/2), cos (dim/2)]."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    pe = pos.to(torch.float32).unsqueeze(-1) / dim_t
    return torch.cat([pe.sin(), pe.cos()], dim=-1)


_ROPE_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def axial_rope_tables(
    head_dim: int, side: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (side*side, head_dim/2) of 2-D axial RoPE (cached).

    Pairs 0..head_dim/4-1 rotate by the column (n mod side), the rest by the row
    (n div side); frequencies theta^(-4j/head_dim).
    """
    key = (head_dim, side, float(theta), str(device))
    hit = _ROPE_CACHE.get(key)
    if hit is not None:
        return hit
    with torch.inference_mode(False), torch.no_grad():
        freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4, device=device)[: head_dim // 4]
                                 .float() / head_dim))
        n = torch.arange(side * side, dtype=torch.float32, device=device)
        tx = n % side
        ty = torch.div(n, side, rounding_mode="floor")
        angles = torch.cat([torch.outer(tx, freqs), torch.outer(ty, freqs)], dim=-1)
        # the real and imaginary parts of polar(1, angle); no complex dtype (MPS has none)
        tables = (torch.cos(angles), torch.sin(angles))
    _ROPE_CACHE[key] = tables
    return tables


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of x (B, nh, N, hd) by tables (M, hd/2).

    If N is a multiple r of M the table applies to each of the r blocks of M tokens (keys of
    r memory frames), by broadcasting: the same products as a table repeated r times, without
    the copy. Returns float32 of x's shape.
    """
    n, m = x.shape[-2], cos.shape[0]
    xr = x.float().unflatten(-1, (-1, 2))  # (B, nh, N, hd/2, 2)
    if n != m:
        if n % m:
            raise ValueError(f"{n} tokens are not a multiple of the {m}-token RoPE table")
        xr = xr.unflatten(-3, (n // m, m))  # (B, nh, r, M, hd/2, 2)
    a, b = xr[..., 0], xr[..., 1]
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    return out if n == m else out.flatten(-3, -2)


def apply_rope_channels_first(x_t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                              n_rotated: int) -> torch.Tensor:
    """:func:`apply_rope` for tokens laid out channels first: x_t (B, nh, hd, N) -> a new
    float32 (B, nh, hd, N) whose first ``n_rotated`` tokens are rotated by the tables
    (M, hd/2) (repeated over blocks of M tokens, as ``apply_rope`` does) and the rest copied.

    The same products as ``apply_rope`` (so the same values), written straight into the
    layout memory attention's blocked attention reads, without the stack, concatenation and
    transposition copies of the token-major path.
    """
    hd, m = x_t.shape[-2], cos.shape[0]
    if n_rotated % m:
        raise ValueError(f"{n_rotated} tokens are not a multiple of the {m}-token RoPE table")
    x = x_t.float().unflatten(-2, (hd // 2, 2))  # (B, nh, hd/2, 2, N)
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    cos_t = cos.t().unsqueeze(-2)  # (hd/2, 1, M): broadcast over the memory frames
    sin_t = sin.t().unsqueeze(-2)
    frames = (n_rotated // m, m)
    a = x[..., 0, :n_rotated].unflatten(-1, frames)  # (B, nh, hd/2, r, M)
    b = x[..., 1, :n_rotated].unflatten(-1, frames)
    real = out[..., 0, :n_rotated].unflatten(-1, frames)
    imag = out[..., 1, :n_rotated].unflatten(-1, frames)
    torch.mul(a, cos_t, out=real)
    real.sub_(b * sin_t)
    torch.mul(a, sin_t, out=imag)
    imag.add_(b * cos_t)
    out[..., n_rotated:] = x[..., n_rotated:]
    return out.flatten(-3, -2)
