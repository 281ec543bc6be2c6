"""Prompt encoder: points (boxes arrive as two corner points) and a low-res mask prompt."""

from __future__ import annotations

import torch
from torch import nn

from .config import PromptEncoderConfig
from .layers import LayerNorm2d
from .position_encoding import PositionEmbeddingRandom

__all__ = ["PromptEncoder"]


class PromptEncoder(nn.Module):
    """Sparse (point) and dense (mask) prompt embeddings of width ``embed_dim`` (C).

    Point labels: -1 padding, 0 negative, 1 positive, 2 box top-left, 3 box bottom-right.
    """

    def __init__(self, cfg: PromptEncoderConfig, *, embed_dim: int, image_size: int,
                 feature_size: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_size = image_size
        self.feature_size = feature_size
        self.mask_input_size = 4 * feature_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        c = cfg.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.Conv2d(c // 4, c, kernel_size=2, stride=2),
            LayerNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self._dense_pe: tuple | None = None

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) positional encoding of the image-embedding grid.

        Cached; the key holds the Fourier buffer's identity and version, so loading weights
        (an in-place copy) or moving the module recomputes it.
        """
        g = self.pe_layer.positional_encoding_gaussian_matrix
        key = (g.device, g.dtype, g.data_ptr(), g._version)
        if self._dense_pe is None or self._dense_pe[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                pe = self.pe_layer.dense(self.feature_size, self.feature_size).unsqueeze(0)
            self._dense_pe = (key, pe)
        return self._dense_pe[1]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, *,
                     pad: bool = True) -> torch.Tensor:
        """(B, N, 2) x, y in model-input pixels and (B, N) labels -> (B, N+pad, C).

        Coordinates are shifted to pixel centres (+0.5); a padding point (label -1) is
        appended when ``pad`` (always, in every SAM 2 code path).
        """
        coords = coords.to(torch.float32) + 0.5
        labels = labels.to(torch.int64)
        if pad:
            B = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(B, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((B, 1), -1)], dim=1)
        emb = self.pe_layer.forward_with_coords(coords, self.image_size)  # (B, N, C)
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == -1, self.not_a_point_embed.weight, emb)
        for i, e in enumerate(self.point_embeddings):
            emb = emb + (lab == i).to(emb.dtype) * e.weight
        return emb

    def embed_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask logits -> (B, C, h, w)."""
        return self.mask_downscaling(masks)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        masks: torch.Tensor | None,
        *,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return sparse (B, N+1, C) (or (B, 0, C) without points) and dense (B, C, h, w)."""
        if points is not None:
            B = points[0].shape[0]
        elif masks is not None:
            B = masks.shape[0]
        else:
            B = batch_size or 1
        w = self.no_mask_embed.weight
        if points is not None:
            sparse = self.embed_points(points[0], points[1], pad=True)
        else:
            sparse = w.new_empty(B, 0, self.embed_dim)
        if masks is not None:
            dense = self.embed_mask(masks.to(w.dtype))
        else:
            s = self.feature_size
            dense = w.reshape(1, -1, 1, 1).expand(B, -1, s, s)
        return sparse, dense
