"""Memory attention: condition the current frame's features on the memory bank.

Each layer: RoPE self-attention (no PE added), RoPE cross-attention to the memories
(keys = memory + memory PE; the object-pointer tokens at the end are not rotated), FFN.
Pre-norm, LayerNorm eps 1e-5; a final LayerNorm. Tokens are batch-first inside.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MemoryAttentionConfig
from .layers import Dropout
from .transformer import RoPEAttention

__all__ = ["MemoryAttention", "MemoryAttentionLayer"]


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

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                num_obj_ptr_tokens: int) -> torch.Tensor:
        """tgt (B, hw, C), memory and memory_pos (B, M, Cm) -> (B, hw, C)."""
        x = self.norm1(tgt)
        tgt = tgt + self.dropout1(self.self_attn(x, x, x))
        x = self.norm2(tgt)
        x = self.cross_attn_image(x, memory + memory_pos, memory,
                                  num_k_exclude_rope=num_obj_ptr_tokens)
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

    def forward(self, curr: torch.Tensor, curr_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, num_obj_ptr_tokens: int = 0) -> torch.Tensor:
        """curr, curr_pos (B, hw, C); memory, memory_pos (B, M, Cm) -> (B, hw, C).

        The last ``num_obj_ptr_tokens`` memory tokens are object pointers (no RoPE).
        """
        x = curr
        if self.pos_enc_at_input:
            x = x + 0.1 * curr_pos
        memory = memory.to(x.dtype)
        memory_pos = memory_pos.to(x.dtype)
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens)
        return self.norm(x)
