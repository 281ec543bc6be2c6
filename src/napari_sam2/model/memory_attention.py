"""Memory attention: condition the current frame's features on the memory bank.

Each layer: RoPE self-attention (no PE added), RoPE cross-attention to the memories
(keys = memory + memory PE; the object-pointer tokens at the end are not rotated), FFN.
Pre-norm, LayerNorm eps 1e-5; a final LayerNorm. Tokens are batch-first inside.

Everything before the first layer's cross-attention reads only the current frame (the input
PE, layer 0's self-attention, layer 0's rotated cross-attention queries), so for several
objects on one frame ``MemoryAttention.start`` computes it once and ``forward(..., start=)``
goes on from there for each object: the same operations in the same order, so for a batch of
one the same bits as the plain ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import MemoryAttentionConfig
from .layers import Dropout
from .transformer import RoPEAttention

__all__ = ["MemoryAttention", "MemoryAttentionLayer", "MemoryAttentionStart"]


@dataclass(frozen=True)
class MemoryAttentionStart:
    """The object-independent start of memory attention on one frame.

    Attributes:
        tgt: (1, hw, C) tokens after layer 0's self-attention residual.
        q_heads: (1, nh, hw, hd) layer 0's cross-attention queries (projected, rotated).
    """

    tgt: torch.Tensor
    q_heads: torch.Tensor


class MemoryAttentionLayer(nn.Module):
    def __init__(self, cfg: MemoryAttentionConfig, *, d_model: int, kv_in_dim: int) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, cfg.num_heads, rope_theta=cfg.rope_theta,
                                       dropout=cfg.dropout)
        self.cross_attn_image = RoPEAttention(d_model, cfg.num_heads, rope_theta=cfg.rope_theta,
                                              rope_k_repeat=True, dropout=cfg.dropout,
                                              kv_in_dim=kv_in_dim)
        self.linear1 = nn.Linear(d_model, cfg.dim_feedforward)
        self.dropout = Dropout(cfg.dropout)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = Dropout(cfg.dropout)
        self.dropout2 = Dropout(cfg.dropout)
        self.dropout3 = Dropout(cfg.dropout)
        self.activation = nn.ReLU()

    def self_block(self, tgt: torch.Tensor) -> torch.Tensor:
        """tgt (B, hw, C) -> tgt plus its self-attention (no memory involved)."""
        x = self.norm1(tgt)
        return tgt + self.dropout1(self.self_attn(x, x, x))

    def cross_queries(self, tgt: torch.Tensor) -> torch.Tensor:
        """The cross-attention's rotated queries (B, nh, hw, hd) of ``self_block``'s output."""
        return self.cross_attn_image.project_query(self.norm2(tgt))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                num_obj_ptr_tokens: int, *, start: MemoryAttentionStart | None = None
                ) -> torch.Tensor:
        """tgt (B, hw, C), memory and memory_pos (B, M, Cm) -> (B, hw, C).

        ``start``: this layer's ``self_block(tgt)`` and ``cross_queries`` of it, computed
        beforehand (batch 1, shared by the B rows); ``tgt`` is then ignored.
        """
        if start is None:
            tgt = self.self_block(tgt)
            x = self.cross_attn_image(self.norm2(tgt), memory + memory_pos, memory,
                                      num_k_exclude_rope=num_obj_ptr_tokens)
        else:
            B = memory.shape[0]
            tgt = start.tgt.expand(B, -1, -1)
            x = self.cross_attn_image(None, memory + memory_pos, memory,
                                      num_k_exclude_rope=num_obj_ptr_tokens,
                                      q_heads=start.q_heads.expand(B, -1, -1, -1))
        tgt = tgt + self.dropout2(x)
        x = self.linear2(self.dropout(self.activation(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(x)


class MemoryAttention(nn.Module):
    """``num_layers`` MemoryAttentionLayers and a final LayerNorm."""

    def __init__(self, cfg: MemoryAttentionConfig, *, d_model: int, kv_in_dim: int) -> None:
        super().__init__()
        self.pos_enc_at_input = cfg.pos_enc_at_input
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(cfg, d_model=d_model, kv_in_dim=kv_in_dim)
            for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d_model)

    def set_dropout(self, p: float) -> None:
        """Training option: the dropout of every layer (attention probabilities and residual
        branches; the config's value, 0.1 for SAM 2, is the default)."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"memory-attention dropout must be in [0, 1), got {p}")
        for layer in self.layers:
            for module in layer.modules():
                if isinstance(module, nn.Dropout):
                    module.p = p
                elif hasattr(module, "dropout_p"):
                    module.dropout_p = p

    def _input(self, curr: torch.Tensor, curr_pos: torch.Tensor) -> torch.Tensor:
        return curr + 0.1 * curr_pos if self.pos_enc_at_input else curr

    def start(self, curr: torch.Tensor, curr_pos: torch.Tensor) -> MemoryAttentionStart:
        """curr, curr_pos (1, hw, C) -> the part of ``forward`` that no memory changes, for
        ``forward(..., start=)``. Inference only: in training each call draws its own
        dropout, so the start cannot be shared (ValueError in training mode)."""
        if self.training:
            raise ValueError("MemoryAttention.start is for inference: call model.eval() first "
                             "(in training every object draws its own dropout)")
        layer = self.layers[0]
        tgt = layer.self_block(self._input(curr, curr_pos))
        return MemoryAttentionStart(tgt, layer.cross_queries(tgt))

    def forward(self, curr: torch.Tensor | None, curr_pos: torch.Tensor | None,
                memory: torch.Tensor, memory_pos: torch.Tensor, num_obj_ptr_tokens: int = 0,
                *, start: MemoryAttentionStart | None = None) -> torch.Tensor:
        """curr, curr_pos (B, hw, C); memory, memory_pos (B, M, Cm) -> (B, hw, C).

        The last ``num_obj_ptr_tokens`` memory tokens are object pointers (no RoPE).
        ``start``: ``self.start(curr, curr_pos)`` of the frame, shared by the B rows (then
        ``curr`` and ``curr_pos`` are not read and may be None).
        """
        x = None if start is not None else self._input(curr, curr_pos)
        dtype = start.tgt.dtype if start is not None else x.dtype
        memory = memory.to(dtype)
        memory_pos = memory_pos.to(dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens,
                      start=start if i == 0 else None)
        return self.norm(x)
