"""The single-mask selection: an empty token-0 mask is not "stable" (ours), Meta's rule on
request (``MaskDecoderConfig.empty_single_mask_unstable=False``)."""

from dataclasses import replace

import pytest
import torch

from napari_sam2.model.config import MaskDecoderConfig
from napari_sam2.model.mask_decoder import MaskDecoder, stability_scores


def _decoder(**cfg) -> MaskDecoder:
    small = replace(MaskDecoderConfig(), num_heads=2, mlp_dim=16, iou_head_hidden_dim=8, **cfg)
    return MaskDecoder(small, transformer_dim=16, use_high_res_features=False,
                       iou_prediction_use_sigmoid=True, pred_obj_scores=True,
                       pred_obj_scores_mlp=False, use_multimask_token_for_obj_ptr=True).eval()


def _outputs():
    """Token 0 empty everywhere (logits -5), token 2 a 4 x 4 square with the best IoU."""
    masks = torch.full((1, 4, 16, 16), -5.0)
    masks[0, 2, 4:8, 4:8] = 5.0
    masks[0, 3, :, :] = 3.0
    iou = torch.tensor([[0.72, 0.1, 0.9, 0.3]])
    return masks, iou


@pytest.mark.parametrize("ours", [True, False])
def test_an_empty_single_mask_gives_way_to_the_best_multimask(ours):
    masks, iou = _outputs()
    assert stability_scores(masks[:, 0:1], 0.05).item() == 1.0  # Meta's rule: "stable"
    out_masks, out_iou = _decoder(empty_single_mask_unstable=ours)._dynamic_single(masks, iou)
    if ours:
        assert torch.equal(out_masks, masks[:, 2:3]) and out_iou.item() == pytest.approx(0.9)
    else:
        assert torch.equal(out_masks, masks[:, 0:1]) and out_iou.item() == pytest.approx(0.72)


def test_a_stable_non_empty_single_mask_is_kept():
    masks, iou = _outputs()
    masks[0, 0, 2:10, 2:10] = 6.0  # crisp: every logit far from 0, stability 1
    out_masks, _ = _decoder()._dynamic_single(masks, iou)
    assert torch.equal(out_masks, masks[:, 0:1])
