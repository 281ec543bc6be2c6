"""Sam2Model: the SAM 2 network and its per-frame operations (no frame loop, no video state).

Attribute names equal Meta's checkpoint keys. Notation: S = image_size, C = hidden_dim,
Cm = mem_dim, h = w = S // 16. The tracking loop (memory selection, prompts, storage) lives in
``napari_sam2.engine``; this module offers the steps it composes. See docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import Sam2Config
from .image_encoder import ImageEncoder
from .layers import MLP
from .mask_decoder import MaskDecoder, MaskDecoderOutput
from .memory_attention import MemoryAttention, MemoryAttentionStart
from .memory_encoder import MemoryEncoder
from .position_encoding import sine_1d
from .prompt_encoder import PromptEncoder

__all__ = ["Sam2Model", "ImageFeatures", "SamHeadsOutput", "MaskDecoderOutput", "NO_OBJ_SCORE"]

NO_OBJ_SCORE = -1024.0  # mask logits of an object judged absent


@dataclass(frozen=True)
class ImageFeatures:
    """Backbone output for a batch of frames.

    vision_features: (B, C, h, w) raw stride-16 map (without no_mem_embed).
    vision_pos_enc: (B, C, h, w) its sine position encoding (a broadcast view; do not
        modify in place).
    high_res_features: ((B, C/8, 4h, 4w) after conv_s0, (B, C/4, 2h, 2w) after conv_s1);
        empty when the config does not use high-res features.
    """

    vision_features: torch.Tensor
    vision_pos_enc: torch.Tensor
    high_res_features: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class SamHeadsOutput:
    """Meta's ``_forward_sam_heads`` outputs (M = 3 multimask, else 1).

    low_res_multimasks (B, M, 4h, 4w), high_res_multimasks (B, M, S, S), ious (B, M),
    low_res_masks (B, 1, 4h, 4w), high_res_masks (B, 1, S, S) (best IoU when multimask),
    obj_ptr (B, C), object_score_logits (B, 1). Mask logits are NO_OBJ_SCORE where the object
    score is <= 0.
    """

    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    ious: torch.Tensor
    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor


class Sam2Model(nn.Module):
    """SAM 2 / SAM 2.1 built from a :class:`Sam2Config`."""

    def __init__(self, config: Sam2Config) -> None:
        super().__init__()
        cfg = self.config = config
        C, Cm = cfg.hidden_dim, cfg.mem_dim
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, Cm))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, C))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, C))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, C)) if cfg.pred_obj_scores else None
        self.no_obj_embed_spatial = (nn.Parameter(torch.zeros(1, Cm))
                                     if cfg.no_obj_embed_spatial else None)
        self.image_encoder = ImageEncoder(cfg.image_encoder, cfg.neck, d_model=C)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(cfg.memory_attention, d_model=C, kv_in_dim=Cm)
        self.memory_encoder = MemoryEncoder(cfg.memory_encoder, in_dim=C, out_dim=Cm)
        self.sam_prompt_encoder = PromptEncoder(cfg.prompt_encoder, embed_dim=C,
                                                image_size=cfg.image_size,
                                                feature_size=cfg.feature_size)
        self.sam_mask_decoder = MaskDecoder(
            cfg.mask_decoder, transformer_dim=C,
            use_high_res_features=cfg.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=cfg.iou_prediction_use_sigmoid,
            pred_obj_scores=cfg.pred_obj_scores, pred_obj_scores_mlp=cfg.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=cfg.use_multimask_token_for_obj_ptr)
        self.obj_ptr_proj = MLP(C, C, C, 3) if cfg.use_mlp_for_obj_ptr_proj else nn.Linear(C, C)
        self.obj_ptr_tpos_proj = (nn.Linear(C, Cm) if cfg.proj_tpos_enc_in_obj_ptrs
                                  else nn.Identity())
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc,
                  self.no_obj_ptr, self.no_obj_embed_spatial):
            if p is not None and not p.is_meta:
                nn.init.trunc_normal_(p, std=0.02)

    # ------------------------------------------------------------------------- image path
    @property
    def image_size(self) -> int:
        return self.config.image_size

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """(B, 3, S, S) ImageNet-normalised images -> :class:`ImageFeatures`."""
        S = self.config.image_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (S, S):
            raise ValueError(f"encode_image expects (B, 3, {S}, {S}) normalised images, "
                             f"got {tuple(images.shape)}")
        fpn, pos = self.image_encoder(images)
        high_res: tuple[torch.Tensor, ...] = ()
        if self.config.use_high_res_features_in_sam:
            dec = self.sam_mask_decoder
            high_res = (dec.conv_s0(fpn[-3]), dec.conv_s1(fpn[-2]))
        return ImageFeatures(vision_features=fpn[-1], vision_pos_enc=pos,
                             high_res_features=high_res)

    def add_no_mem_embed(self, vision_features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> the same + no_mem_embed: the features of a frame without memory
        (Meta's image predictor's ``image_embed``; initial conditioning frames)."""
        return vision_features + self.no_mem_embed.view(1, -1, 1, 1)

    def dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) prompt-encoder position encoding of the feature grid."""
        return self.sam_prompt_encoder.get_dense_pe()

    def _mask_prompt(self, mask_inputs: torch.Tensor | None) -> torch.Tensor | None:
        if mask_inputs is None:
            return None
        if mask_inputs.ndim != 4 or mask_inputs.shape[1] != 1:
            raise ValueError(f"mask inputs must be (B, 1, H, W) logits, got "
                             f"{tuple(mask_inputs.shape)}")
        size = self.sam_prompt_encoder.mask_input_size
        if mask_inputs.shape[-2:] != (size, size):
            mask_inputs = F.interpolate(mask_inputs.float(), size=(size, size), mode="bilinear",
                                        align_corners=False, antialias=True)
        return mask_inputs

    def prompt_and_decode(
        self,
        image_embed: torch.Tensor,
        high_res_features: tuple[torch.Tensor, ...],
        *,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> MaskDecoderOutput:
        """The image-predictor path: prompt encoder + mask decoder with the decoder's own
        selection (multimask tokens 1..3, or token 0 with the dynamic-stability fallback).

        Args:
            image_embed: (1 or B, C, h, w) = ``add_no_mem_embed(vision_features)``.
            high_res_features: as in :class:`ImageFeatures` (batch 1 or B).
            point_coords: (B, N, 2) x, y in model-input pixels (boxes as two corner points
                with labels 2, 3 placed first), or None. A padding point is appended.
            point_labels: (B, N) ints, or None.
            mask_input: (B, 1, 4h, 4w) logits, or None.
        Returns:
            :class:`MaskDecoderOutput` (masks (B, M, 4h, 4w) unclamped logits, IoUs (B, M),
            tokens, object score logits (B, 1)). No object-score masking.
        """
        points = self._points(point_coords, point_labels, image_embed.shape[0], required=False)
        B = (points[0].shape[0] if points is not None
             else mask_input.shape[0] if mask_input is not None else image_embed.shape[0])
        sparse, dense = self.sam_prompt_encoder(points, self._mask_prompt(mask_input),
                                                batch_size=B)
        return self.sam_mask_decoder(image_embed, self.dense_pe(), sparse, dense,
                                     multimask_output=multimask_output,
                                     high_res_features=tuple(high_res_features) or None)

    def _points(self, coords, labels, B, *, required):
        if coords is None and labels is None:
            if not required:
                return None
            dev = self.no_mem_embed.device
            return (torch.zeros(B, 1, 2, device=dev),
                    -torch.ones(B, 1, dtype=torch.int32, device=dev))
        if coords is None or labels is None:
            raise ValueError("pass point_coords and point_labels together")
        if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
            raise ValueError(f"point_coords must be (B, N, 2) and point_labels (B, N); got "
                             f"{tuple(coords.shape)} and {tuple(labels.shape)}")
        return coords, labels

    # ------------------------------------------------------------------ tracking steps
    def use_multimask(self, *, is_init_cond_frame: bool, num_points: int) -> bool:
        """Meta's ``_use_multimask``: multimask for 0..1 points (tracked frames: always)."""
        c = self.config
        return (c.multimask_output_in_sam
                and (is_init_cond_frame or c.multimask_output_for_tracking)
                and c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num)

    def run_sam_heads(
        self,
        backbone_features: torch.Tensor,
        *,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        high_res_features: tuple[torch.Tensor, ...] = (),
        multimask_output: bool = False,
    ) -> SamHeadsOutput:
        """Meta's ``_forward_sam_heads`` (video path).

        Args:
            backbone_features: (B, C, h, w): ``add_no_mem_embed`` features (initial frames)
                or ``condition_on_memory`` output (tracked frames).
            point_coords: (B, N, 2) x, y in model-input pixels, or None (then one padding
                point stands in). Labels (B, N).
            mask_inputs: (B, 1, 4h, 4w) logits (other sizes are resized), or None.
            high_res_features: ((B, C/8, 4h, 4w), (B, C/4, 2h, 2w)).
            multimask_output: 3 masks and the best-IoU pick (see :meth:`use_multimask`).
        """
        cfg = self.config
        B, C, h, w = backbone_features.shape
        if C != cfg.hidden_dim or h != cfg.feature_size or w != cfg.feature_size:
            raise ValueError(f"backbone_features must be (B, {cfg.hidden_dim}, "
                             f"{cfg.feature_size}, {cfg.feature_size}), got "
                             f"{tuple(backbone_features.shape)}")
        points = self._points(point_coords, point_labels, B, required=True)
        sparse, dense = self.sam_prompt_encoder(points, self._mask_prompt(mask_inputs))
        dec = self.sam_mask_decoder(backbone_features, self.dense_pe(), sparse, dense,
                                    multimask_output=multimask_output,
                                    high_res_features=tuple(high_res_features) or None)
        low_multi, ious, tokens, obj_score = (dec.masks, dec.iou_predictions, dec.sam_tokens,
                                              dec.object_score_logits)
        if cfg.pred_obj_scores:
            present = obj_score > 0  # (B, 1)
            low_multi = torch.where(present[:, None, None], low_multi,
                                    torch.full_like(low_multi, NO_OBJ_SCORE))
        low_multi = low_multi.float()
        S = cfg.image_size
        high_multi = F.interpolate(low_multi, size=(S, S), mode="bilinear", align_corners=False)
        token = tokens[:, 0]
        if multimask_output:
            best = ious.argmax(dim=-1)
            rows = torch.arange(B, device=ious.device)
            low = low_multi[rows, best].unsqueeze(1)
            high = high_multi[rows, best].unsqueeze(1)
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low, high = low_multi, high_multi
        obj_ptr = self.obj_ptr_proj(token)
        if cfg.pred_obj_scores:
            lam = obj_score.sigmoid() if cfg.soft_no_obj_ptr else present.float()
            if cfg.fixed_no_obj_ptr:
                obj_ptr = lam * obj_ptr
            obj_ptr = obj_ptr + (1 - lam) * self.no_obj_ptr
        return SamHeadsOutput(low_multi, high_multi, ious, low, high, obj_ptr, obj_score)

    def mask_as_output(self, backbone_features: torch.Tensor,
                       high_res_features: tuple[torch.Tensor, ...],
                       mask: torch.Tensor) -> SamHeadsOutput:
        """Meta's ``_use_mask_as_output``: a given (B, 1, S, S) 0/1 mask is the output.

        backbone_features are the raw ``vision_features`` (no no_mem_embed, no memory); the
        pointer comes from the decoder prompted with ``mask_downsample(mask)``. Logits are
        mask * 20 - 10; low-res by antialiased bilinear; IoU 1; object score +-10.
        """
        S = self.config.image_size
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (S, S):
            raise ValueError(f"mask must be (B, 1, {S}, {S}), got {tuple(mask.shape)}")
        m = mask.float()
        high = m * 20.0 - 10.0
        low = F.interpolate(high, size=(S // 4, S // 4), mode="bilinear", align_corners=False,
                            antialias=True)
        ious = m.new_ones(m.shape[0], 1)
        heads = self.run_sam_heads(backbone_features, mask_inputs=self.mask_downsample(m),
                                   high_res_features=high_res_features)
        present = (m.flatten(1) > 0).any(dim=1, keepdim=True).float()  # (B, 1)
        obj_score = 20.0 * present - 10.0
        obj_ptr = heads.obj_ptr
        if self.config.pred_obj_scores:
            if self.config.fixed_no_obj_ptr:
                obj_ptr = present * obj_ptr
            obj_ptr = obj_ptr + (1 - present) * self.no_obj_ptr
        return SamHeadsOutput(low, high, ious, low, high, obj_ptr, obj_score)

    def condition_on_memory(self, current: torch.Tensor, current_pos: torch.Tensor,
                            memory: torch.Tensor, memory_pos: torch.Tensor,
                            num_obj_ptr_tokens: int, *,
                            start: MemoryAttentionStart | None = None) -> torch.Tensor:
        """Memory attention.

        Args:
            current, current_pos: (B, C, h, w) raw vision features and their sine PE.
            memory, memory_pos: (M, B, Cm): spatial memory tokens first (hw per frame,
                see :meth:`spatial_memory_tokens`), then ``num_obj_ptr_tokens`` pointer
                tokens (see :meth:`obj_ptr_tokens`).
            start: :meth:`memory_attention_start` of ``current[:1]`` (all B rows must be the
                same frame): the memory-independent start computed once for several calls;
                for B = 1 the same bits as without it.
        Returns:
            (B, C, h, w) memory-conditioned features for :meth:`run_sam_heads`.
        """
        B, C, h, w = current.shape
        tokens = None if start is not None else current.flatten(2).transpose(1, 2)
        pos = None if start is not None else current_pos.flatten(2).transpose(1, 2)
        out = self.memory_attention(tokens, pos, memory.transpose(0, 1),
                                    memory_pos.transpose(0, 1), num_obj_ptr_tokens,
                                    start=start)  # (B, hw, C)
        return out.transpose(1, 2).reshape(B, C, h, w)

    def memory_attention_start(self, current: torch.Tensor,
                               current_pos: torch.Tensor) -> MemoryAttentionStart:
        """(1, C, h, w) raw features of a frame and their PE -> the object-independent start
        of memory attention (the input PE, layer 0's self-attention and cross-attention
        queries), for ``condition_on_memory(..., start=)`` of every object on that frame.
        Inference only (eval mode)."""
        return self.memory_attention.start(current.flatten(2).transpose(1, 2),
                                           current_pos.flatten(2).transpose(1, 2))

    def encode_memory(self, vision_features: torch.Tensor, high_res_masks: torch.Tensor,
                      object_score_logits: torch.Tensor, *,
                      is_mask_from_pts: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta's ``_encode_new_memory``.

        Args:
            vision_features: (B, C, h, w) raw features (no no_mem_embed).
            high_res_masks: (B, 1, S, S) logits.
            object_score_logits: (B, 1); <= 0 adds no_obj_embed_spatial (SAM 2.1).
            is_mask_from_pts: binarise (> 0) instead of sigmoid (frames with user input,
                when ``binarize_mask_from_pts_for_mem_enc``; eval mode only).
        Returns:
            maskmem_features (B, Cm, h, w), maskmem_pos_enc (B, Cm, h, w).
        """
        cfg = self.config
        masks = high_res_masks
        if cfg.non_overlap_masks_for_mem_enc and not self.training and masks.shape[0] > 1:
            keep = masks.argmax(dim=0, keepdim=True) == torch.arange(
                masks.shape[0], device=masks.device)[:, None, None, None]
            masks = torch.where(keep, masks, masks.clamp(max=-10.0))
        if is_mask_from_pts and cfg.binarize_mask_from_pts_for_mem_enc and not self.training:
            m = (masks > 0).to(vision_features.dtype)
        else:
            m = torch.sigmoid(masks)
        m = m * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        feats, pos = self.memory_encoder(vision_features, m)
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).to(feats.dtype)  # (B, 1)
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return feats, pos

    def spatial_memory_tokens(self, maskmem_features: torch.Tensor,
                              maskmem_pos_enc: torch.Tensor,
                              t_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Cm, h, w) memory of a frame -> tokens (hw, B, Cm) and PE (hw, B, Cm) with
        ``maskmem_tpos_enc[num_maskmem - t_pos - 1]`` added (t_pos 0 = conditioning frame,
        1..num_maskmem-1 = that many slots back from the oldest)."""
        n = self.config.num_maskmem
        if not 0 <= t_pos < n:
            raise ValueError(f"t_pos must be in [0, {n - 1}], got {t_pos}")
        feats = maskmem_features.flatten(2).permute(2, 0, 1).to(self.no_mem_embed.dtype)
        pos = maskmem_pos_enc.flatten(2).permute(2, 0, 1) + self.maskmem_tpos_enc[n - t_pos - 1]
        return feats, pos

    def obj_ptr_temporal_encoding(self, rel_pos: torch.Tensor, max_abs_pos: int) -> torch.Tensor:
        """(P,) frame distances -> (P, Cm) pointer position encoding.

        SAM 2.1: 1-D sine PE (dim C) of rel_pos / max_abs_pos through ``obj_ptr_tpos_proj``;
        SAM 2.0: zeros. Meta uses max_abs_pos = min(num_frames, max_obj_ptrs_in_encoder) - 1
        and signed distances when ``use_signed_tpos_enc_to_obj_ptrs`` (else absolute).
        """
        cfg = self.config
        P = rel_pos.shape[0]
        if not cfg.add_tpos_enc_to_obj_ptrs:
            return self.no_mem_embed.new_zeros(P, cfg.mem_dim)
        if max_abs_pos < 1:
            raise ValueError(f"max_abs_pos must be >= 1, got {max_abs_pos}")
        dim = cfg.hidden_dim if cfg.proj_tpos_enc_in_obj_ptrs else cfg.mem_dim
        pe = sine_1d(rel_pos.to(self.no_mem_embed.device) / max_abs_pos, dim)
        return self.obj_ptr_tpos_proj(pe.to(self.no_mem_embed.dtype))

    def obj_ptr_tokens(self, obj_ptrs: torch.Tensor, rel_pos: torch.Tensor,
                       max_abs_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, B, C) pointers -> tokens (P*C/Cm, B, Cm) and their PE (same shape).

        Each pointer is split into C/Cm consecutive chunks sharing the pointer's PE.
        """
        P, B, C = obj_ptrs.shape
        Cm = self.config.mem_dim
        pos = self.obj_ptr_temporal_encoding(rel_pos, max_abs_pos)  # (P, Cm)
        pos = pos.unsqueeze(1).expand(-1, B, Cm)
        if Cm < C:
            obj_ptrs = obj_ptrs.reshape(P, B, C // Cm, Cm).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(C // Cm, dim=0)
        return obj_ptrs, pos

    def forward(self, *args, **kwargs):  # pragma: no cover - explicit API only
        raise TypeError("Sam2Model has no forward(); use encode_image, run_sam_heads, "
                        "condition_on_memory and encode_memory (docs/architecture.md)")
