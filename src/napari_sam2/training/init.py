"""Initialisation helpers for training SAM 2 from scratch.

With Meta's independent initialisation of the query and key projections, the mask decoder's
prompt <-> image cross-attentions start with scores unrelated to position, and a from-scratch
decoder learns to ignore the click: on a toy task (segment a disk around a random click, no
image content) it had not started to use the click after 380 steps. Tying each cross-attention's
key projection to its query projection (scaled) makes the initial score a similarity of
``token + PE(click)`` with ``pixel + PE(pixel)``, so a click attends to its neighbourhood from
the first step; the same toy task then learned the disk after ~180 steps. Training unties them
freely (they are separate parameters); only the starting point changes.
"""

from __future__ import annotations

import torch

__all__ = ["tie_decoder_cross_attention"]


def tie_decoder_cross_attention(model, scale: float = 4.0) -> int:
    """Set ``q_proj.weight *= scale`` and ``k_proj.weight = q_proj.weight`` in the mask
    decoder's token->image, image->token and final attentions. Returns how many were set."""
    transformer = model.sam_mask_decoder.transformer
    attentions = []
    for layer in transformer.layers:
        attentions += [layer.cross_attn_token_to_image, layer.cross_attn_image_to_token]
    attentions.append(transformer.final_attn_token_to_image)
    with torch.no_grad():
        for att in attentions:
            att.q_proj.weight.mul_(scale)
            att.k_proj.weight.copy_(att.q_proj.weight)
    return len(attentions)
