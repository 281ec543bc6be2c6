"""Cached evaluation of the SAM 2 mask decoder for interactive clicks (same maths).

For one click on a cached embedding, everything that does not depend on the prompt is
computed once per image (``DecoderImageCache``) instead of on every click:

* the image tokens plus the no-mask embedding;
* block 0's image-side projections (``TwoWayAttentionBlock.project_image``): the
  token->image keys and values and the image->token queries (block 0 sees the image tokens
  before any prompt has touched them), passed to the model's own two-way transformer;
* the high-res skip features, rearranged into the pixel-unshuffled layout that the output
  upscaling's GEMMs produce, with the transposed convolutions' biases folded in, so that
  ``torch.addmm`` does matmul, bias and skip connection in one pass and only the final
  (M, 4h, 4w) logits are rearranged.

The transformer is the model's own (``TwoWayTransformer.run_tokens``). The results equal
``Sam2Model.prompt_and_decode`` up to float rounding (~1e-6 of the logits' range; tested).
Only the standard decoder structure is supported (``supports``); the predictor falls back to
``prompt_and_decode`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.transformer import ImageProjections


@dataclass(frozen=True)
class DecoderImageCache:
    """Prompt-independent decoder inputs of one image embedding.

    Attributes:
        keys: (1, hw, C) image tokens = image_embed + no_mask_embed, flattened.
        proj: block 0's image-side projections of ``keys``.
        feat_s1: (hw, 4 * C/4) the stride-8 high-res features plus the first transposed
            convolution's bias, pixel (2i+a, 2j+b), channel o at [i*w + j, (a*2 + b)*C/4 + o]:
            the layout the upscaling GEMM produces, so one ``addmm`` does GEMM, bias and add.
        feat_s0: (4hw, 4 * C/8) the stride-4 features plus the second convolution's bias,
            pixel (4i+2a+a2, 4j+2b+b2) at [((i*w + j)*2 + a)*2 + b, (a2*2 + b2)*C/8 + o].
    """

    keys: torch.Tensor
    proj: ImageProjections
    feat_s1: torch.Tensor
    feat_s0: torch.Tensor

    @property
    def nbytes(self) -> int:
        ts = (self.keys, self.proj.k, self.proj.v, self.proj.q_t, self.feat_s1, self.feat_s0)
        return int(sum(t.numel() * t.element_size() for t in ts))


def flat_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, hw, C) contiguous (the transformer's token layout)."""
    return x.flatten(2).transpose(1, 2).contiguous()


def build_cache(decoder, image_embed, key_pe, no_mask_dense,
                high_res_features) -> DecoderImageCache:
    """Precompute the prompt-independent part.

    Args:
        image_embed: (1, C, h, w); key_pe: (1, hw, C) ``flat_tokens`` of the dense positional
        encoding (shared by all embeddings of a model); no_mask_dense: (1, C, h, w) the
        prompt encoder's dense embedding without a mask; high_res_features:
        ((1, C/8, 4h, 4w), (1, C/4, 2h, 2w)).
    """
    keys = flat_tokens(image_embed + no_mask_dense)
    _, _, h, w = image_embed.shape
    f0, f1 = high_res_features
    c0, c1 = f0.shape[1], f1.shape[1]
    dc1, _, _, dc2, _ = decoder.output_upscaling
    # [o, i, a, j, b] -> [i, j, a, b, o]
    f1 = f1[0].reshape(c1, h, 2, w, 2).permute(1, 3, 2, 4, 0).reshape(h * w, 4 * c1)
    # [o, i, a, a2, j, b, b2] -> [i, j, a, b, a2, b2, o]
    f0 = f0[0].reshape(c0, h, 2, 2, w, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
    f0 = f0.reshape(4 * h * w, 4 * c0)
    return DecoderImageCache(
        keys=keys,
        proj=decoder.transformer.layers[0].project_image(keys, key_pe),
        feat_s1=(f1 + dc1.bias.repeat(4)).contiguous(),
        feat_s0=(f0 + dc2.bias.repeat(4)).contiguous(),
    )


def _conv_t_as_matrix(conv) -> torch.Tensor:
    """ConvTranspose2d(k=2, s=2) weight (Cin, Cout, 2, 2) -> (Cin, [a, b, Cout])."""
    w = conv.weight
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


def _upscale_and_masks(decoder, src_tokens, hyper_in, cache, hw):
    """Output upscaling + hypernetwork product as GEMMs in a pixel-unshuffled layout.

    Args:
        src_tokens: (hw, C) image tokens after the transformer (row-major over h, w).
        hyper_in: (nm, C/8) hypernetwork outputs.
    Returns:
        (1, nm, 4h, 4w) mask logits.
    """
    h, w = hw
    dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
    c1, c0 = dc1.weight.shape[1], dc2.weight.shape[1]
    y = torch.addmm(cache.feat_s1, src_tokens, _conv_t_as_matrix(dc1))  # (hw, 4*c1)
    y = act1(F.layer_norm(y.view(-1, c1), (c1,), ln1.weight, ln1.bias, ln1.eps))
    y = act2(torch.addmm(cache.feat_s0, y.view(-1, c1), _conv_t_as_matrix(dc2)))
    nm = hyper_in.shape[0]
    m = (y.view(-1, c0) @ hyper_in.t()).view(h, w, 2, 2, 2, 2, nm)
    # [i, j, a, b, a2, b2, m] -> [m, i, a, a2, j, b, b2]
    return m.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, nm, 4 * h, 4 * w)


def run_transformer(decoder, tokens, keys, key_pe, cache: DecoderImageCache | None):
    """The decoder's two-way transformer with block 0's image-side projections taken from
    ``cache`` when given: tokens (B, Nt, C), keys (B, hw, C), key_pe (1, hw, C) -> (tokens,
    keys)."""
    return decoder.transformer.run_tokens(tokens, keys, key_pe,
                                          None if cache is None else cache.proj)


def decode(decoder, image_embed, key_pe, sparse, dense, cache: DecoderImageCache, *,
           multimask_output: bool, mask_prompt: bool):
    """Mask decoder forward with the decoder's selection; the same outputs as
    ``decoder(image_embed, image_pe, sparse, dense, multimask_output=..., high_res_features)``.

    Args:
        decoder: the model's ``sam_mask_decoder``.
        image_embed: (1, C, h, w); key_pe: (1, hw, C) flattened dense positional encoding;
        sparse: (1, N, C) prompt tokens; dense: (1, C, h, w) dense prompt embedding.
        cache: ``build_cache`` of this embedding.
        mask_prompt: True when ``dense`` comes from a mask prompt (then the cached image
            tokens do not apply).

    Returns:
        (masks (1, M, 4h, 4w), iou (1, M), object score logits (1, 1)).
    """
    s = 1 if decoder.pred_obj_scores else 0
    parts = [decoder.iou_token.weight, decoder.mask_tokens.weight]
    if decoder.pred_obj_scores:
        parts.insert(0, decoder.obj_score_token.weight)
    tokens = torch.cat((torch.cat(parts, dim=0).unsqueeze(0), sparse.to(parts[0].dtype)), dim=1)
    if mask_prompt:
        hs, keys = run_transformer(decoder, tokens, flat_tokens(image_embed + dense), key_pe,
                                   None)
    else:
        hs, keys = run_transformer(decoder, tokens, cache.keys, key_pe, cache)
    nm = decoder.num_mask_tokens
    mask_tokens_out = hs[0, s + 1: s + 1 + nm, :]
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)])
    masks = _upscale_and_masks(decoder, keys[0], hyper_in, cache, image_embed.shape[-2:])
    iou = decoder.iou_prediction_head(hs[:, s, :])
    obj = (decoder.pred_obj_score_head(hs[:, 0, :]) if decoder.pred_obj_scores
           else 10.0 * iou.new_ones(iou.shape[0], 1))
    if multimask_output:
        return masks[:, 1:], iou[:, 1:], obj
    if decoder.cfg.dynamic_multimask_via_stability and not decoder.training:
        m, i = decoder._dynamic_single(masks, iou)
        return m, i, obj
    return masks[:, 0:1], iou[:, 0:1], obj


def supports(decoder) -> bool:
    """True when ``decoder`` has the standard structure this module evaluates."""
    try:
        tr = decoder.transformer
        ok = len(tr.layers) > 0 and tr.layers[0].skip_first_layer_pe
        ok = ok and decoder.use_high_res_features and len(decoder.output_upscaling) == 5
        attn = tr.final_attn_token_to_image
        ok = ok and hasattr(attn, "forward_few_queries") and hasattr(tr, "run_tokens")
        return bool(ok and hasattr(decoder, "_dynamic_single"))
    except AttributeError:
        return False
