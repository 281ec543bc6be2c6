"""Mask decoder: two-way transformer over output tokens and image, hypernetwork masks,
IoU head (sigmoid) and object-score head.

Two ways to run it, the same function up to float rounding: ``forward`` (any batch, training
and autograd), and for interactive clicks on one image ``precompute`` once per image
embedding, then ``decode_cached`` per prompt (about half the work; see ``DecoderCache``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import MaskDecoderConfig
from .layers import MLP, LayerNorm2d
from .transformer import ImageProjections, TwoWayTransformer

__all__ = ["DecoderCache", "MaskDecoder", "MaskDecoderOutput", "flat_tokens",
           "stability_scores"]


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


@dataclass(frozen=True)
class DecoderCache:
    """The prompt-independent part of the decoder for one image embedding
    (``MaskDecoder.precompute``), used by ``MaskDecoder.decode_cached``.

    * block 0's image-side projections: block 0 sees the image tokens before any prompt has
      touched them, so its token->image keys and values and its image->token queries are
      fixed per image (unless a mask prompt changes the image tokens);
    * the high-res skip features, rearranged into the pixel-unshuffled layout that the
      output upscaling's GEMMs produce, with the transposed convolutions' biases folded in,
      so that one ``torch.addmm`` does matmul, bias and skip connection and only the final
      (M, 4h, 4w) logits are rearranged.

    Attributes:
        image_embed: (1, C, h, w) the embedding (the caller's tensor, kept for mask prompts).
        key_pe: (1, hw, C) the dense positional encoding in token layout (the caller's
            tensor, shared by all embeddings of a model).
        keys: (1, hw, C) image tokens = image_embed + the no-mask dense embedding, flattened.
        proj: block 0's image-side projections of ``keys``.
        feat_s1: (hw, 4 * C/4) the stride-8 high-res features plus the first transposed
            convolution's bias, pixel (2i+a, 2j+b), channel o at [i*w + j, (a*2 + b)*C/4 + o]:
            the layout the upscaling GEMM produces, so one ``addmm`` does GEMM, bias and add.
        feat_s0: (4hw, 4 * C/8) the stride-4 features plus the second convolution's bias,
            pixel (4i+2a+a2, 4j+2b+b2) at [((i*w + j)*2 + a)*2 + b, (a2*2 + b2)*C/8 + o].
    """

    image_embed: torch.Tensor
    key_pe: torch.Tensor
    keys: torch.Tensor
    proj: ImageProjections
    feat_s1: torch.Tensor
    feat_s0: torch.Tensor

    @property
    def nbytes(self) -> int:
        """Memory the cache adds (its own tensors; ``image_embed`` and ``key_pe`` are the
        caller's): 22 MiB for an official model in float32."""
        ts = (self.keys, self.proj.k, self.proj.v, self.proj.q_t, self.feat_s1, self.feat_s0)
        return int(sum(t.numel() * t.element_size() for t in ts))


def flat_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, hw, C) contiguous (the transformer's token layout)."""
    return x.flatten(2).transpose(1, 2).contiguous()


def _conv_t_as_matrix(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """ConvTranspose2d(k=2, s=2) weight (Cin, Cout, 2, 2) -> (Cin, [a, b, Cout])."""
    w = conv.weight
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


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
        s = 1 if self.pred_obj_scores else 0
        tokens = self._tokens(sparse_prompt_embeddings)
        src = image_embeddings
        if src.shape[0] != B:
            src = src.expand(B, -1, -1, -1)
        src = src + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens)
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
        iou_pred, obj = self._scores(hs)
        return masks, iou_pred, mask_tokens_out, obj

    def _tokens(self, sparse_prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, N, C) prompt tokens -> (B, s + 1 + 4 + N, C) with the output tokens first:
        [object score (s = 1 when pred_obj_scores), IoU, 4 mask tokens, prompts]."""
        B = sparse_prompt_embeddings.shape[0]
        parts = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            parts.insert(0, self.obj_score_token.weight)
        out_tokens = torch.cat(parts, dim=0).unsqueeze(0).expand(B, -1, -1)
        return torch.cat((out_tokens, sparse_prompt_embeddings.to(out_tokens.dtype)), dim=1)

    def _scores(self, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformer output tokens (B, Nt, C) -> IoU predictions (B, 4), object score
        logits (B, 1) (10 when the decoder predicts none)."""
        s = 1 if self.pred_obj_scores else 0
        iou_pred = self.iou_prediction_head(hs[:, s, :])
        if self.pred_obj_scores:
            obj = self.pred_obj_score_head(hs[:, 0, :])
        else:
            obj = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return iou_pred, obj

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
        return self._select(*self.predict_all(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
            high_res_features), multimask_output=multimask_output)

    def _select(self, masks: torch.Tensor, iou: torch.Tensor, tokens: torch.Tensor,
                obj: torch.Tensor, *, multimask_output: bool) -> MaskDecoderOutput:
        """``predict_all``'s outputs -> the selected ones (see ``forward``)."""
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
        """(B, 4, H, W), (B, 4) -> token 0 if stable, else the best-IoU multimask.

        With ``empty_single_mask_unstable`` an empty token-0 mask (no logit above 0) is not
        stable (Meta's stability score can call it 1.0): the best multimask answers instead."""
        multi_iou = iou[:, 1:]
        best = multi_iou.argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, 0:1], iou[:, 0:1]
        stable = stability_scores(single_masks, self.cfg.dynamic_multimask_stability_delta) \
            >= self.cfg.dynamic_multimask_stability_thresh  # (B, 1)
        if self.cfg.empty_single_mask_unstable:
            stable = stable & (single_masks.flatten(2) > 0).any(-1)
        out_masks = torch.where(stable[..., None, None], single_masks, best_masks)
        out_iou = torch.where(stable, single_iou, best_iou)
        return out_masks, out_iou

    # ------------------------------------------------------------------ cached path
    @property
    def supports_cache(self) -> bool:
        """True when ``precompute`` / ``decode_cached`` apply: the decoder uses high-res
        features and block 0 of its transformer adds no positional encoding to the tokens."""
        layers = self.transformer.layers
        return bool(self.use_high_res_features and len(layers) > 0
                    and layers[0].skip_first_layer_pe)

    def precompute(self, image_embed: torch.Tensor, key_pe: torch.Tensor,
                   no_mask_dense: torch.Tensor,
                   high_res_features: tuple[torch.Tensor, torch.Tensor]) -> DecoderCache:
        """The prompt-independent part of the decoder for one image embedding.

        Args:
            image_embed: (1, C, h, w).
            key_pe: (1, hw, C) ``flat_tokens`` of the dense positional encoding (shared by
                all embeddings of a model).
            no_mask_dense: (1, C, h, w) the prompt encoder's dense embedding without a mask.
            high_res_features: ((1, C/8, 4h, 4w), (1, C/4, 2h, 2w)).

        Returns:
            ``DecoderCache`` for ``decode_cached``.
        """
        if not self.supports_cache:
            raise ValueError("this mask decoder has no cached path (it needs high-res "
                             "features and skip_first_layer_pe): use forward()")
        keys = flat_tokens(image_embed + no_mask_dense)
        _, _, h, w = image_embed.shape
        f0, f1 = high_res_features
        c0, c1 = f0.shape[1], f1.shape[1]
        dc1, dc2 = self.output_upscaling[0], self.output_upscaling[3]
        # [o, i, a, j, b] -> [i, j, a, b, o]
        f1 = f1[0].reshape(c1, h, 2, w, 2).permute(1, 3, 2, 4, 0).reshape(h * w, 4 * c1)
        # [o, i, a, a2, j, b, b2] -> [i, j, a, b, a2, b2, o]
        f0 = f0[0].reshape(c0, h, 2, 2, w, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
        f0 = f0.reshape(4 * h * w, 4 * c0)
        return DecoderCache(
            image_embed=image_embed,
            key_pe=key_pe,
            keys=keys,
            proj=self.transformer.layers[0].project_image(keys, key_pe),
            feat_s1=(f1 + dc1.bias.repeat(4)).contiguous(),
            feat_s0=(f0 + dc2.bias.repeat(4)).contiguous(),
        )

    def decode_cached(self, cache: DecoderCache, sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor | None = None, *,
                      multimask_output: bool) -> MaskDecoderOutput:
        """``forward`` for one prompt on a precomputed image: the same outputs as
        ``forward(cache.image_embed, image_pe, sparse, dense, multimask_output=...,
        high_res_features=...)`` up to float rounding (~1e-6 of the logits' range).

        Args:
            cache: ``precompute`` of the image embedding.
            sparse_prompt_embeddings: (B, N, C) prompt tokens: B prompts on the one image
                (B = 1 for a click; automatic segmentation decodes a batch of grid points).
            dense_prompt_embeddings: (1 or B, C, h, w) the dense embedding of a mask prompt,
                or None when there is no mask prompt (the cached no-mask image tokens are
                used).

        Returns:
            ``MaskDecoderOutput`` with batch B.
        """
        s = 1 if self.pred_obj_scores else 0
        tokens = self._tokens(sparse_prompt_embeddings)
        if dense_prompt_embeddings is None:
            hs, keys = self.transformer.run_tokens(tokens, cache.keys, cache.key_pe, cache.proj)
        else:  # a mask prompt changes the image tokens: only the skip layout is reused
            keys = flat_tokens(cache.image_embed + dense_prompt_embeddings)
            hs, keys = self.transformer.run_tokens(tokens, keys, cache.key_pe)
        nm = self.num_mask_tokens
        hw = cache.image_embed.shape[-2:]
        if hs.shape[0] == 1:  # one prompt (a click): the path the golden figures were made on
            mask_tokens_out = hs[0, s + 1: s + 1 + nm, :]
            hyper_in = torch.stack(
                [mlp(mask_tokens_out[i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)])
            masks = self._upscale_cached(keys[0], hyper_in, cache, hw)
            mask_tokens_out = mask_tokens_out[None]
        else:
            mask_tokens_out = hs[:, s + 1: s + 1 + nm, :]
            mlps = self.output_hypernetworks_mlps
            hyper_in = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(mlps)],
                                   dim=1)  # (B, nm, C/8)
            masks = self._upscale_cached_batch(keys.expand(hs.shape[0], -1, -1), hyper_in,
                                               cache, hw)
        iou, obj = self._scores(hs)
        return self._select(masks, iou, mask_tokens_out, obj, multimask_output=multimask_output)

    def _upscale_cached_batch(self, src_tokens: torch.Tensor, hyper_in: torch.Tensor,
                              cache: DecoderCache, hw: tuple[int, int]) -> torch.Tensor:
        """``_upscale_cached`` for B prompts: src_tokens (B, hw, C), hyper_in (B, nm, C/8) ->
        (B, nm, 4h, 4w) mask logits (the same layout, the skips broadcast over B)."""
        h, w = hw
        B = src_tokens.shape[0]
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        c1, c0 = dc1.weight.shape[1], dc2.weight.shape[1]
        y = (src_tokens.reshape(B * h * w, -1) @ _conv_t_as_matrix(dc1)).view(B, h * w, -1)
        y = act1(F.layer_norm(y.add_(cache.feat_s1).view(-1, c1), (c1,), ln1.weight, ln1.bias,
                              ln1.eps))
        y = (y @ _conv_t_as_matrix(dc2)).view(B, 4 * h * w, -1)
        y = act2(y.add_(cache.feat_s0))
        nm = hyper_in.shape[1]
        m = torch.bmm(y.view(B, -1, c0), hyper_in.transpose(1, 2)).view(B, h, w, 2, 2, 2, 2, nm)
        # [B, i, j, a, b, a2, b2, m] -> [B, m, i, a, a2, j, b, b2]
        return m.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(B, nm, 4 * h, 4 * w)

    def _upscale_cached(self, src_tokens: torch.Tensor, hyper_in: torch.Tensor,
                        cache: DecoderCache, hw: tuple[int, int]) -> torch.Tensor:
        """Output upscaling + hypernetwork product as GEMMs in a pixel-unshuffled layout.

        Args:
            src_tokens: (hw, C) image tokens after the transformer (row-major over h, w).
            hyper_in: (nm, C/8) hypernetwork outputs.
        Returns:
            (1, nm, 4h, 4w) mask logits.
        """
        h, w = hw
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        c1, c0 = dc1.weight.shape[1], dc2.weight.shape[1]
        y = torch.addmm(cache.feat_s1, src_tokens, _conv_t_as_matrix(dc1))  # (hw, 4*c1)
        y = act1(F.layer_norm(y.view(-1, c1), (c1,), ln1.weight, ln1.bias, ln1.eps))
        y = act2(torch.addmm(cache.feat_s0, y.view(-1, c1), _conv_t_as_matrix(dc2)))
        nm = hyper_in.shape[0]
        m = (y.view(-1, c0) @ hyper_in.t()).view(h, w, 2, 2, 2, 2, nm)
        # [i, j, a, b, a2, b2, m] -> [m, i, a, a2, j, b, b2]
        return m.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, nm, 4 * h, 4 * w)
