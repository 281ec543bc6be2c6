"""Hiera trunk of SAM 2 (Meta's ``hieradet``): windowed multi-scale attention blocks.

Tokens are kept channels-last, (B, H, W, C), throughout. Four stages; at the first block of
stages 2..q_pool+1 the queries are max-pooled 2x2 and channels and heads double. Parameter
names follow Meta's checkpoint (``patch_embed.proj``, ``blocks.{i}.attn.qkv`` ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import HieraConfig
from .layers import MLP, attention

__all__ = ["Hiera", "MultiScaleBlock", "MultiScaleAttention", "window_partition",
           "window_unpartition"]


def _pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool a channels-last map: (B, H, W, C) -> (B, H/s, W/s, C) (floor)."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> windows (B * nW, ws, ws, C), zero-padding bottom/right; and (Hp, Wp)."""
    B, H, W, C = x.shape
    pad_h, pad_w = (ws - H % ws) % ws, (ws - W % ws) % ws
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).transpose(2, 3)
    return x.reshape(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(
    windows: torch.Tensor, ws: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Windows (B * nW, ws, ws, C) -> (B, H, W, C), cropping the padding."""
    Hp, Wp = pad_hw
    H, W = hw
    B = windows.shape[0] // ((Hp // ws) * (Wp // ws))
    x = windows.view(B, Hp // ws, Wp // ws, ws, ws, -1).transpose(2, 3).reshape(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :]
    return x


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention dim -> dim_out with optional 2x2 max-pooled queries."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H', W', dim_out); H' = H / q_stride when pooling."""
        B, H, W, _ = x.shape
        qkv = self.qkv(x).view(B, H * W, 3, self.num_heads, -1)  # (B, HW, 3, nh, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, HW, hd)
        if self.q_stride:
            hd = q.shape[-1]
            q = q.transpose(1, 2).reshape(B, H, W, -1)
            q = _pool(q, self.q_stride)
            H, W = q.shape[1], q.shape[2]
            q = q.reshape(B, H * W, self.num_heads, hd).transpose(1, 2)
        x = attention(q, k, v)  # (B, nh, H'W', hd)
        x = x.transpose(1, 2).reshape(B, H, W, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with windowed (or global, window 0) attention."""

    def __init__(self, *, dim: int, dim_out: int, num_heads: int, mlp_ratio: float,
                 q_stride: int | None, window_size: int, norm_eps: float) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=norm_eps)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H', W', dim_out)."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            # the residual is the projection of the *normalised* input, pooled
            shortcut = self.proj(x)
            if self.q_stride:
                shortcut = _pool(shortcut, self.q_stride)
        ws = self.window_size
        H, W = x.shape[1], x.shape[2]
        if ws > 0:
            x, pad_hw = window_partition(x, ws)
        x = self.attn(x)
        if ws > 0:
            if self.q_stride:
                ws = ws // self.q_stride
                H, W = shortcut.shape[1], shortcut.shape[2]
                pad_hw = (H + (ws - H % ws) % ws, W + (ws - W % ws) % ws)
            x = window_unpartition(x, ws, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Hiera trunk: (B, 3, S, S) -> one (B, C_i, S/4/2^i, S/4/2^i) map per stage."""

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, kernel_size=cfg.patch_kernel,
                                          stride=cfg.patch_stride, padding=cfg.patch_padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *cfg.window_pos_embed_bkg_spatial_size))
        w0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, w0, w0))
        self.stage_ends = cfg.stage_ends
        q_pool_blocks = set(cfg.q_pool_blocks)
        heads = cfg.num_heads
        stage = 0
        blocks = []
        for i in range(cfg.num_blocks):
            dim_out = dim
            # the window size lags: the first block of a stage uses the previous stage's
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            if i - 1 in self.stage_ends:
                dim_out = int(dim * cfg.dim_mul)
                heads = int(heads * cfg.head_mul)
                stage += 1
            blocks.append(MultiScaleBlock(
                dim=dim, dim_out=dim_out, num_heads=heads, mlp_ratio=cfg.mlp_ratio,
                q_stride=cfg.q_stride[0] if i in q_pool_blocks else None,
                window_size=window, norm_eps=cfg.norm_eps))
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = tuple(reversed(cfg.stage_dims))
        self._pe_cache: tuple | None = None

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """(1, h, w, C): bicubic-resized background embedding + tiled window embedding.

        Cached while no gradient is needed; the key includes the parameters' versions, so
        loading new weights (in-place copies) invalidates it.
        """
        p, win = self.pos_embed, self.pos_embed_window
        cacheable = not (torch.is_grad_enabled() and (p.requires_grad or win.requires_grad))
        key = (h, w, p.device, p.dtype, p.data_ptr(), p._version, win.data_ptr(), win._version)
        if cacheable and self._pe_cache is not None and self._pe_cache[0] == key:
            return self._pe_cache[1]
        if not cacheable:
            return self._compute_pos_embed(h, w)
        # a normal (non-inference) tensor, so that a later training step may use the cache
        with torch.inference_mode(False), torch.no_grad():
            pe = self._compute_pos_embed(h, w)
        self._pe_cache = (key, pe)
        return pe

    def _compute_pos_embed(self, h: int, w: int) -> torch.Tensor:
        win = self.pos_embed_window
        pe = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic", align_corners=False)
        pe = pe + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pe.permute(0, 2, 3, 1).contiguous()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> [stride 4, 8, 16, 32] feature maps, channels-first."""
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)  # (B, S/4, S/4, C), strided view
        x = self._pos_embed(x.shape[1], x.shape[2]) + x  # this order gives a contiguous result
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
