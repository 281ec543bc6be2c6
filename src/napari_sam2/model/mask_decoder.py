"""Mask decoder: two-way transformer over output tokens and image, hypernetwork masks,
IoU head (sigmoid) and object-score head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import MaskDecoderConfig
from .layers import MLP, LayerNorm2d
from .transformer import TwoWayTransformer

__all__ = ["MaskDecoder", "MaskDecoderOutput", "stability_scores"]


@dataclass(frozen=True)
class MaskDecoderOutput:
    """What the decoder returns after its multimask / single-mask selection.

    masks: (B, M, 4h, 4w) logits; M = 3 multimask, else 1.
    iou_predictions: (B, M).
    sam_tokens: (B, M', C) mask tokens for the object pointer (M' = 3 when multimask output
        and use_multimask_token_for_obj_ptr, else 1: always token 0 for single output).
    object_score_logits: (B, 1).
    """

    masks: torch.Tensor
    iou_predictions: torch.Tensor
    sam_tokens: torch.Tensor
    object_score_logits: torch.Tensor


def stability_scores(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """(..., H, W) -> (...) area(logit > delta) / area(logit > -delta); 1 if empty."""
    flat = mask_logits.flatten(-2)
    inter = (flat > delta).sum(-1).float()
    union = (flat > -delta).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


class MaskDecoder(nn.Module):
    """SAM 2 mask decoder with ``num_multimask_outputs + 1`` mask tokens."""

    def __init__(self, cfg: MaskDecoderConfig, *, transformer_dim: int,
                 use_high_res_features: bool, iou_prediction_use_sigmoid: bool,
                 pred_obj_scores: bool, pred_obj_scores_mlp: bool,
                 use_multimask_token_for_obj_ptr: bool) -> None:
        super().__init__()
        C = transformer_dim
        self.cfg = cfg
        self.transformer = TwoWayTransformer(
            depth=cfg.transformer_depth, embedding_dim=C, num_heads=cfg.num_heads,
            mlp_dim=cfg.mlp_dim, attention_downsample_rate=cfg.attention_downsample_rate)
        self.num_mask_tokens = cfg.num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, C)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, C)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, C)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(C, C // 4, kernel_size=2, stride=2),
            LayerNorm2d(C // 4),
            nn.GELU(),
            nn.ConvTranspose2d(C // 4, C // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(C, C // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(C, C // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(C, C, C // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(C, cfg.iou_head_hidden_dim, self.num_mask_tokens,
                                       cfg.iou_head_depth,
                                       sigmoid_output=iou_prediction_use_sigmoid)
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(C, C, 1, 3) if pred_obj_scores_mlp else nn.Linear(C, 1)

    def predict_all(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        high_res_features: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All mask tokens, before selection.

        Args:
            image_embeddings: (B or 1, C, h, w); a batch of 1 is shared by all prompts.
            image_pe: (1, C, h, w).
            sparse_prompt_embeddings: (B, N, C).
            dense_prompt_embeddings: (B, C, h, w).
            high_res_features: ((B or 1, C/8, 4h, 4w), (B or 1, C/4, 2h, 2w)).

        Returns:
            masks (B, 4, 4h, 4w), iou (B, 4), mask tokens (B, 4, C), object scores (B, 1).
        """
        B = sparse_prompt_embeddings.shape[0]
        parts = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            parts.insert(0, self.obj_score_token.weight)
        s = 1 if self.pred_obj_scores else 0
        out_tokens = torch.cat(parts, dim=0).unsqueeze(0).expand(B, -1, -1)
        tokens = torch.cat((out_tokens, sparse_prompt_embeddings.to(out_tokens.dtype)), dim=1)
        src = image_embeddings
        if src.shape[0] != B:
            src = src.expand(B, -1, -1, -1)
        src = src + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens)
        iou_token_out = hs[:, s, :]
        mask_tokens_out = hs[:, s + 1: s + 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1)  # (B, 4, C/8)
        if self.use_high_res_features:
            if high_res_features is None:
                raise ValueError("this decoder needs high_res_features (use_high_res_features)")
            up = self._upscale_channels_last(src, h, w, high_res_features)  # (B, 4h, 4w, C/8)
            masks = (hyper_in @ up.flatten(1, 2).transpose(1, 2)).view(b, -1, 4 * h, 4 * w)
        else:
            up = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
            masks = (hyper_in @ up.flatten(2)).view(b, -1, up.shape[-2], up.shape[-1])
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            obj = self.pred_obj_score_head(hs[:, 0, :])
        else:
            obj = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, obj

    def _upscale_channels_last(self, tokens: torch.Tensor, h: int, w: int,
                               high_res_features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``output_upscaling`` with the high-res skips, on channels-last tokens.

        A stride-2, kernel-2 transposed conv is a Linear to (C_out, 2, 2) per input pixel
        followed by a pixel shuffle; that avoids the slow CPU deconvolution and layout
        changes. (B, h*w, C) -> (B, 4h, 4w, C/8).
        """
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        B = tokens.shape[0]
        x = self._deconv2x2_add(tokens.view(B, h, w, -1), dc1, feat_s1)  # (B, 2h, 2w, C/4)
        x = act1(F.layer_norm(x, x.shape[-1:], ln1.weight, ln1.bias, ln1.eps))
        return act2(self._deconv2x2_add(x, dc2, feat_s0))  # (B, 4h, 4w, C/8)

    @staticmethod
    def _deconv2x2_add(x: torch.Tensor, conv: nn.ConvTranspose2d,
                       skip: torch.Tensor) -> torch.Tensor:
        """conv(x) + skip for a kernel-2 stride-2 transposed conv, channels-last.

        x (B, H, W, Cin), skip (B or 1, Cout, 2H, 2W) -> (B, 2H, 2W, Cout).
        """
        B, H, W, _ = x.shape
        cout = conv.weight.shape[1]
        y = x @ conv.weight.flatten(1)  # (B, H, W, Cout*4), columns ordered (co, di, dj)
        shuffled = y.view(B, H, W, cout, 2, 2).permute(0, 1, 4, 2, 5, 3)  # (B, H, 2, W, 2, Co)
        skip = skip.permute(0, 2, 3, 1).to(y.dtype).expand(B, -1, -1, -1)  # shared skip: B=1
        if torch.is_grad_enabled() and (y.requires_grad or skip.requires_grad):
            return shuffled.reshape(B, 2 * H, 2 * W, cout) + conv.bias + skip  # autograd path
        # inference: two passes over the output instead of three
        out = torch.empty(B, 2 * H, 2 * W, cout, dtype=y.dtype, device=y.device)
        torch.add(skip, conv.bias.to(y.dtype), out=out)
        out.view(B, H, 2, W, 2, cout).add_(shuffled)
        return out

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        multimask_output: bool,
        high_res_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> MaskDecoderOutput:
        """Decode and select: multimask -> tokens 1..3; single -> token 0, or with dynamic
        stability (eval only) the best multimask when token 0's stability < thresh."""
        masks, iou, tokens, obj = self.predict_all(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
            high_res_features)
        if multimask_output:
            out_masks, out_iou = masks[:, 1:], iou[:, 1:]
        elif self.cfg.dynamic_multimask_via_stability and not self.training:
            out_masks, out_iou = self._dynamic_single(masks, iou)
        else:
            out_masks, out_iou = masks[:, 0:1], iou[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = tokens[:, 1:]
        else:
            sam_tokens = tokens[:, 0:1]
        return MaskDecoderOutput(out_masks, out_iou, sam_tokens, obj)

    def _dynamic_single(self, masks: torch.Tensor,
                        iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 4, H, W), (B, 4) -> token 0 if stable, else the best-IoU multimask."""
        multi_iou = iou[:, 1:]
        best = multi_iou.argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, 0:1], iou[:, 0:1]
        stable = stability_scores(single_masks, self.cfg.dynamic_multimask_stability_delta) \
            >= self.cfg.dynamic_multimask_stability_thresh  # (B, 1)
        out_masks = torch.where(stable[..., None, None], single_masks, best_masks)
        out_iou = torch.where(stable, single_iou, best_iou)
        return out_masks, out_iou
