"""MaskDecoder.decode_cached on a batch of prompts (automatic segmentation's grid points):
the same outputs as MaskDecoder.forward on that batch, and each row the same as decoding that
prompt alone (shipped sam2_demo weights, CPU)."""

import pytest
import torch

from napari_sam2.model.mask_decoder import flat_tokens
from tests.model.test_mask_decoder_cache import image, model  # noqa: F401 (fixtures)


@pytest.mark.parametrize("multimask_output", [True, False])
def test_batched_decode_cached_equals_forward_and_single(  # noqa: F811 (fixtures)
        model, image, multimask_output):
    embed, high_res, no_mask, dense_pe = image
    dec = model.sam_mask_decoder
    S = model.config.image_size
    g = torch.Generator().manual_seed(5)
    coords = torch.rand(9, 1, 2, generator=g) * S
    labels = torch.ones(9, 1, dtype=torch.int32)
    with torch.inference_mode():
        cache = dec.precompute(embed, flat_tokens(dense_pe), no_mask, high_res)
        sparse, dense = model.sam_prompt_encoder((coords, labels), None, batch_size=9)
        ref = dec(embed, dense_pe, sparse, dense, multimask_output=multimask_output,
                  high_res_features=high_res)
        out = dec.decode_cached(cache, sparse, multimask_output=multimask_output)
        span = float(ref.masks.abs().max())
        assert out.masks.shape == ref.masks.shape == (9, 3 if multimask_output else 1,
                                                      *ref.masks.shape[-2:])
        assert torch.allclose(out.masks, ref.masks, atol=1e-5 * span, rtol=0)
        assert torch.allclose(out.iou_predictions, ref.iou_predictions, atol=1e-5)
        assert torch.allclose(out.object_score_logits, ref.object_score_logits, atol=1e-4)
        assert torch.allclose(out.sam_tokens, ref.sam_tokens, atol=1e-4)
        for i in (0, 4, 8):
            one = dec.decode_cached(cache, sparse[i:i + 1], multimask_output=multimask_output)
            assert torch.allclose(out.masks[i], one.masks[0], atol=1e-5 * span, rtol=0)
            assert torch.allclose(out.iou_predictions[i], one.iou_predictions[0], atol=1e-5)
