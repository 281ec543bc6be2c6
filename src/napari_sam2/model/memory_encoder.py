"""Memory encoder: fuse a (scaled) mask with the frame's features into a memory map."""

from __future__ import annotations

import torch
from torch import nn

from .config import MemoryEncoderConfig
from .layers import LayerNorm2d
from .position_encoding import PositionEmbeddingSine

__all__ = ["MaskDownSampler", "CXBlock", "Fuser", "MemoryEncoder"]


class MaskDownSampler(nn.Module):
    """[Conv k s, LayerNorm2d, GELU] x log_s(total_stride), channels x s^2 each, then 1x1."""

    def __init__(self, cfg: MemoryEncoderConfig, *, embed_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for _ in range(cfg.downsampler_layers):
            cout = cin * cfg.downsampler_stride**2
            layers += [nn.Conv2d(cin, cout, kernel_size=cfg.downsampler_kernel_size,
                                 stride=cfg.downsampler_stride, padding=cfg.downsampler_padding),
                       LayerNorm2d(cout), nn.GELU()]
            cin = cout
        layers.append(nn.Conv2d(cin, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) -> (B, C, S/16, S/16)."""
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, LayerNorm2d, MLP x4 with GELU, layer scale, residual."""

    def __init__(self, dim: int, *, kernel_size: int, padding: int, layer_scale_init: float,
                 mlp_ratio: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, mlp_ratio * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, cfg: MemoryEncoderConfig, *, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CXBlock(dim, kernel_size=cfg.fuser_kernel_size, padding=cfg.fuser_padding,
                    layer_scale_init=cfg.fuser_layer_scale_init, mlp_ratio=cfg.fuser_mlp_ratio)
            for _ in range(cfg.fuser_num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """(features (B, C, h, w), mask (B, 1, S, S) already scaled) -> memory (B, Cm, h, w), PE."""

    def __init__(self, cfg: MemoryEncoderConfig, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(cfg, embed_dim=in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(cfg, dim=in_dim)
        self.position_encoding = PositionEmbeddingSine(out_dim)
        self.out_proj = (nn.Identity() if out_dim == in_dim
                         else nn.Conv2d(in_dim, out_dim, kernel_size=1))

    def forward(self, pix_feat: torch.Tensor,
                masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pix_feat (B, C, h, w) raw backbone features; masks (B, 1, S, S) (no sigmoid here).

        Returns maskmem_features (B, Cm, h, w) and its sine PE (B, Cm, h, w).
        """
        m = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat) + m
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)
