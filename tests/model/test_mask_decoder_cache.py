"""MaskDecoder.precompute / decode_cached: the same function as MaskDecoder.forward, on the
shipped demo weights (real torch, CPU)."""

import dataclasses

import pytest
import torch

from napari_sam2.model.mask_decoder import DecoderCache, MaskDecoder, flat_tokens


@pytest.fixture(scope="module")
def model():
    from napari_sam2.model import load_model

    return load_model("sam2_demo", device="cpu")


@pytest.fixture(scope="module")
def image(model):
    """(1, C, h, w) embedding, high-res features and no-mask dense embedding of a bright disc
    on noise (the shape of a cell), and the dense positional encoding."""
    S = model.config.image_size
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    disc = ((yy - 0.4 * S) ** 2 + (xx - 0.55 * S) ** 2 < (0.15 * S) ** 2).float()
    x = (disc + 0.1 * torch.randn(S, S, generator=g)).expand(1, 3, S, S)
    x = (x - x.mean()) / x.std()
    with torch.inference_mode():
        feats = model.encode_image(x)
        embed = model.add_no_mem_embed(feats.vision_features)
        _, no_mask = model.sam_prompt_encoder(None, None, batch_size=1)
        return embed, feats.high_res_features, no_mask, model.dense_pe()


def _prompt(model, n_points, with_mask):
    S = model.config.image_size
    g = torch.Generator().manual_seed(n_points)
    coords = torch.tensor([[0.55 * S, 0.4 * S]]) if n_points == 1 else \
        torch.rand(n_points, 2, generator=g) * S
    labels = torch.tensor([1] + [0] * (n_points - 1), dtype=torch.int32)
    mask = None
    if with_mask:
        h = model.config.image_size // model.config.backbone_stride
        mask = 8 * torch.randn(1, 1, 4 * h, 4 * h, generator=g)
    return (coords[None], labels[None]), mask


@pytest.mark.parametrize("multimask_output", [True, False])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("n_points", [1, 3])
def test_decode_cached_equals_forward(model, image, n_points, with_mask, multimask_output):
    embed, high_res, no_mask, dense_pe = image
    dec = model.sam_mask_decoder
    points, mask = _prompt(model, n_points, with_mask)
    with torch.inference_mode():
        cache = dec.precompute(embed, flat_tokens(dense_pe), no_mask, high_res)
        sparse, dense = model.sam_prompt_encoder(points, mask, batch_size=1)
        ref = dec(embed, dense_pe, sparse, dense, multimask_output=multimask_output,
                  high_res_features=high_res)
        out = dec.decode_cached(cache, sparse, dense if with_mask else None,
                                multimask_output=multimask_output)
    m = 3 if multimask_output else 1
    h = embed.shape[-1]
    assert out.masks.shape == ref.masks.shape == (1, m, 4 * h, 4 * h)
    assert out.sam_tokens.shape == ref.sam_tokens.shape
    scale = ref.masks.abs().max()
    assert scale > 1  # a real mask, not all zeros
    assert (out.masks - ref.masks).abs().max() <= 1e-5 * scale
    torch.testing.assert_close(out.iou_predictions, ref.iou_predictions, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.object_score_logits, ref.object_score_logits, rtol=0,
                               atol=1e-5)
    torch.testing.assert_close(out.sam_tokens, ref.sam_tokens, rtol=0, atol=1e-5)


def test_cache_is_prompt_independent_and_counts_its_own_memory(model, image):
    embed, high_res, no_mask, dense_pe = image
    dec = model.sam_mask_decoder
    key_pe = flat_tokens(dense_pe)
    with torch.inference_mode():
        cache = dec.precompute(embed, key_pe, no_mask, high_res)
        before = [t.clone() for t in (cache.keys, cache.proj.k, cache.feat_s0, cache.feat_s1)]
        sparse, _ = model.sam_prompt_encoder(_prompt(model, 3, False)[0], None, batch_size=1)
        first = dec.decode_cached(cache, sparse, multimask_output=True).masks
        dec.decode_cached(cache, sparse[:, :1], multimask_output=False)
        again = dec.decode_cached(cache, sparse, multimask_output=True).masks
    assert torch.equal(first, again)
    for a, b in zip(before, (cache.keys, cache.proj.k, cache.feat_s0, cache.feat_s1)):
        assert torch.equal(a, b)  # decoding does not write into the cache
    assert cache.image_embed is embed and cache.key_pe is key_pe  # held, not copied
    own = [getattr(cache, f.name) for f in dataclasses.fields(DecoderCache)
           if f.name not in ("image_embed", "key_pe", "proj")]
    own += [cache.proj.k, cache.proj.v, cache.proj.q_t]
    assert cache.nbytes == sum(t.numel() * t.element_size() for t in own)


def test_decoder_without_high_res_features_has_no_cached_path(model, image):
    embed, high_res, no_mask, dense_pe = image
    dec = model.sam_mask_decoder
    assert dec.supports_cache
    plain = MaskDecoder(dec.cfg, transformer_dim=model.config.hidden_dim,
                        use_high_res_features=False, iou_prediction_use_sigmoid=True,
                        pred_obj_scores=True, pred_obj_scores_mlp=True,
                        use_multimask_token_for_obj_ptr=True)
    assert not plain.supports_cache
    with pytest.raises(ValueError, match="no cached path.*use forward"):
        plain.precompute(embed, flat_tokens(dense_pe), no_mask, high_res)
