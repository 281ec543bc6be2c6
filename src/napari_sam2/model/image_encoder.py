"""Image encoder: Hiera trunk + FPN neck (Meta's ``ImageEncoder`` and ``FpnNeck``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FpnNeckConfig, HieraConfig
from .hiera import Hiera
from .position_encoding import PositionEmbeddingSine

__all__ = ["FpnNeck", "ImageEncoder"]


class FpnNeck(nn.Module):
    """1x1 lateral convs to ``d_model`` channels plus top-down nearest upsampling.

    ``convs[k]`` is applied to trunk level ``n-1-k`` (``convs[0]`` takes the deepest map).
    """

    def __init__(self, cfg: FpnNeckConfig, *, d_model: int,
                 backbone_channel_list: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        self.position_encoding = PositionEmbeddingSine(d_model, cfg.pe_temperature)
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            seq = nn.Sequential()
            seq.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(seq)
        self.fpn_top_down_levels = tuple(cfg.fpn_top_down_levels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Trunk maps [stride 4, 8, 16, 32] -> FPN maps (B, d_model, *) at the same strides."""
        n = len(self.convs) - 1
        out: list[torch.Tensor | None] = [None] * len(xs)
        prev = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.fpn_top_down_levels and prev is not None:
                mode = self.cfg.fpn_interp_model
                top_down = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode=mode,
                                         align_corners=None if mode == "nearest" else False)
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
        return out


class ImageEncoder(nn.Module):
    """Trunk and neck; returns the kept FPN levels, finest first, and the last level's PE."""

    def __init__(self, trunk_cfg: HieraConfig, neck_cfg: FpnNeckConfig, *, d_model: int) -> None:
        super().__init__()
        self.trunk = Hiera(trunk_cfg)
        self.neck = FpnNeck(neck_cfg, d_model=d_model,
                            backbone_channel_list=self.trunk.channel_list)
        self.scalp = neck_cfg.scalp

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, S, S) -> ([(B, C, S/4, S/4), (B, C, S/8, S/8), (B, C, S/16, S/16)],
        sine PE of the last kept level (B, C, S/16, S/16))."""
        feats = self.neck(self.trunk(images))
        if self.scalp:
            feats = feats[: -self.scalp]
        return feats, self.neck.position_encoding(feats[-1])
