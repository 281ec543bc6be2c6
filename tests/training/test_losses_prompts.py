"""Loss terms and prompt simulation on hand-made masks."""

import numpy as np
import pytest
import torch

from napari_sam2.training.datasets import SyntheticClips, frames_to_model, labels_to_masks
from napari_sam2.training.losses import dice_loss, mask_losses, sigmoid_focal_loss
from napari_sam2.training.prompts import (boxes_from_masks, choose_prompt_types,
                                          sample_corrective_points, sample_points_inside)


def _disk(h=32, w=32, cy=16, cx=16, r=8):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)


def test_perfect_prediction_has_near_zero_mask_loss_and_worse_is_higher():
    gt = _disk()[None, None].float()
    good = (gt * 2 - 1) * 20
    bad = -good
    assert dice_loss(good, gt).item() < 0.01
    assert sigmoid_focal_loss(good, gt).item() < 1e-6
    assert dice_loss(bad, gt).item() > 0.9
    assert sigmoid_focal_loss(bad, gt).item() > sigmoid_focal_loss(good, gt).item()


def test_only_the_lowest_loss_mask_is_trained():
    gt = _disk()[None, None].float()
    good = (gt[:, 0] * 2 - 1) * 10
    logits = torch.stack([-good, good, -good], dim=1).requires_grad_(True)  # (1, 3, H, W)
    ious = torch.tensor([[0.0, 1.0, 0.0]])
    loss = mask_losses(logits, ious, torch.tensor([[5.0]]), gt)
    loss.total.backward()
    grad = logits.grad.abs().flatten(2).sum(-1)[0]
    assert grad[1] > 0 and grad[0] == 0 and grad[2] == 0


def test_absent_object_only_trains_the_object_score():
    gt = torch.zeros(1, 1, 32, 32)
    logits = torch.randn(1, 1, 32, 32, requires_grad=True)
    score = torch.tensor([[3.0]], requires_grad=True)
    loss = mask_losses(logits, torch.tensor([[0.5]]), score, gt)
    loss.total.backward()
    assert logits.grad.abs().sum() == 0
    assert score.grad.item() > 0  # pushes the score down (object absent)


def test_iou_head_target_is_the_real_iou():
    gt = _disk()[None, None].float()
    logits = ((gt * 2 - 1) * 10)
    right = mask_losses(logits, torch.tensor([[1.0]]), torch.tensor([[5.0]]), gt).iou
    wrong = mask_losses(logits, torch.tensor([[0.2]]), torch.tensor([[5.0]]), gt).iou
    assert right.item() < 1e-6 and wrong.item() == pytest.approx(0.8)


def test_clicks_inside_boxes_around_corrections_from_errors():
    gen = torch.Generator().manual_seed(0)
    masks = torch.stack([_disk(cy=10, cx=12, r=5), _disk(cy=20, cx=20, r=7)])
    pts = sample_points_inside(masks, gen)
    for b in range(2):
        x, y = pts[b, 0].long()
        assert masks[b, y, x]
    box = boxes_from_masks(masks, gen, noise=0.0)
    assert box[0].tolist() == [[7.0, 5.0], [17.0, 15.0]]
    pred = torch.zeros_like(masks)
    pred[1] = masks[1]
    pred[1, 0, 0] = True  # one false positive pixel
    xy, lab = sample_corrective_points(pred, masks, gen)
    x0, y0 = xy[0, 0].long()
    assert lab[0, 0] == 1 and masks[0, y0, x0]  # missed object -> positive click inside
    assert lab[1, 0] == 0 and xy[1, 0].tolist() == [0.0, 0.0]  # false positive -> negative
    xy, lab = sample_corrective_points(masks, masks, gen)
    assert (lab == -1).all()  # nothing to correct -> padding point


def test_prompt_type_probabilities():
    gen = torch.Generator().manual_seed(1)
    kinds = choose_prompt_types(4000, (0.5, 0.25, 0.25), gen)
    frac = torch.bincount(kinds, minlength=3).float() / 4000
    assert torch.allclose(frac, torch.tensor([0.5, 0.25, 0.25]), atol=0.03)
    with pytest.raises(ValueError):
        choose_prompt_types(3, (0, 0, 0), gen)


def test_clips_match_engine_preprocessing_and_masks():
    from napari_sam2.engine.transforms import preprocess_image

    frames = np.random.default_rng(0).integers(100, 5000, size=(2, 48, 64)).astype(np.uint16)
    ours = frames_to_model(frames, 64)
    for t in range(2):
        ref = preprocess_image(frames[t], 64)[0]
        assert torch.allclose(ours[t], ref, atol=1e-5)
    lab = np.zeros((1, 48, 64), np.int32)
    lab[0, 10:30, 20:40] = 3
    m = labels_to_masks(lab, [3], 64)
    assert m.shape == (1, 1, 64, 64) and 0.8 < m.sum().item() / (20 * 20 * 64 * 64 / (48 * 64)) < 1.2

    clip = SyntheticClips(64, num_frames=4, max_objects=3).sample(np.random.default_rng(2))
    assert clip.images.shape == (4, 3, 64, 64) and clip.masks.shape[0] == 4
    assert 1 <= clip.num_objects <= 3 and (clip.masks[0].flatten(1).sum(1) > 0).all()
