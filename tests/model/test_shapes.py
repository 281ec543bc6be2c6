"""Output shapes of every Sam2Model step for the demo model and MedSAM2 (512), plus the
occlusion semantics (object score <= 0) that the tracker relies on."""

import pytest
import torch

from napari_sam2.model import build_model
from napari_sam2.model.sam2 import NO_OBJ_SCORE, ImageFeatures


@pytest.fixture(scope="module")
def demo():
    torch.manual_seed(0)
    return build_model("sam2_demo")


@pytest.fixture(scope="module")
def demo_feats(demo):
    with torch.inference_mode():
        return demo.encode_image(torch.randn(2, 3, 256, 256))


def test_encode_image_shapes(demo, demo_feats):
    C, h = 128, 16
    assert isinstance(demo_feats, ImageFeatures)
    assert demo_feats.vision_features.shape == (2, C, h, h)
    assert demo_feats.vision_pos_enc.shape == (2, C, h, h)
    assert [tuple(f.shape) for f in demo_feats.high_res_features] == [(2, C // 8, 4 * h, 4 * h),
                                                                      (2, C // 4, 2 * h, 2 * h)]
    with pytest.raises(ValueError, match="expects"):
        demo.encode_image(torch.randn(1, 3, 128, 128))


def test_trunk_levels(demo):
    with torch.inference_mode():
        levels = demo.image_encoder.trunk(torch.randn(1, 3, 256, 256))
    assert [tuple(t.shape) for t in levels] == [(1, 32, 64, 64), (1, 64, 32, 32),
                                                (1, 128, 16, 16), (1, 256, 8, 8)]


@pytest.mark.parametrize("multimask", [True, False])
def test_run_sam_heads_shapes(demo, demo_feats, multimask):
    feats = demo.add_no_mem_embed(demo_feats.vision_features)
    pts = torch.tensor([[[100.0, 60.0]], [[10.0, 200.0]]])
    labels = torch.ones(2, 1, dtype=torch.int64)
    mask_in = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        out = demo.run_sam_heads(feats, point_coords=pts, point_labels=labels, mask_inputs=mask_in,
                                 high_res_features=demo_feats.high_res_features,
                                 multimask_output=multimask)
    M = 3 if multimask else 1
    assert out.low_res_multimasks.shape == (2, M, 64, 64)
    assert out.high_res_multimasks.shape == (2, M, 256, 256)
    assert out.ious.shape == (2, M)
    assert out.low_res_masks.shape == (2, 1, 64, 64)
    assert out.high_res_masks.shape == (2, 1, 256, 256)
    assert out.obj_ptr.shape == (2, 128) and out.object_score_logits.shape == (2, 1)
    if multimask:
        best = out.ious.argmax(-1)
        assert torch.equal(out.low_res_masks[:, 0], out.low_res_multimasks[torch.arange(2), best])


def test_prompt_and_decode_box_and_no_prompt(demo, demo_feats):
    emb = demo.add_no_mem_embed(demo_feats.vision_features[:1])
    hr = tuple(f[:1] for f in demo_feats.high_res_features)
    box = torch.tensor([[[20.0, 30.0], [120.0, 140.0]]])
    with torch.inference_mode():
        out = demo.prompt_and_decode(emb, hr, point_coords=box,
                                     point_labels=torch.tensor([[2, 3]]), multimask_output=True)
        assert out.masks.shape == (1, 3, 64, 64) and out.iou_predictions.shape == (1, 3)
        assert out.sam_tokens.shape == (1, 3, 128)
        single = demo.prompt_and_decode(emb, hr, mask_input=torch.randn(1, 1, 64, 64),
                                        multimask_output=False)
        assert single.masks.shape == (1, 1, 64, 64) and single.object_score_logits.shape == (1, 1)
        # 3 box prompts against one image embedding
        boxes = box.expand(3, -1, -1)
        many = demo.prompt_and_decode(emb, hr, point_coords=boxes,
                                      point_labels=torch.tensor([[2, 3]]).expand(3, -1))
        assert many.masks.shape == (3, 3, 64, 64)
        assert torch.allclose(many.masks[0], out.masks[0], atol=1e-5)


def test_memory_steps(demo, demo_feats):
    vf, pos = demo_feats.vision_features, demo_feats.vision_pos_enc
    with torch.inference_mode():
        heads = demo.run_sam_heads(demo.add_no_mem_embed(vf),
                                   high_res_features=demo_feats.high_res_features)
        mem, mem_pos = demo.encode_memory(vf, heads.high_res_masks, heads.object_score_logits,
                                          is_mask_from_pts=True)
        assert mem.shape == (2, 32, 16, 16) and mem_pos.shape == (2, 32, 16, 16)
        sm, sp = demo.spatial_memory_tokens(mem, mem_pos, t_pos=0)
        sm2, sp2 = demo.spatial_memory_tokens(mem, mem_pos, t_pos=3)
        assert sm.shape == sp.shape == (256, 2, 32)
        assert torch.allclose(sp2 - sp, (demo.maskmem_tpos_enc[3] - demo.maskmem_tpos_enc[6])
                              .view(1, 1, 32).expand_as(sp), atol=1e-6)
        ptrs = heads.obj_ptr.unsqueeze(0).expand(3, -1, -1)  # (P=3, B=2, C)
        pt, pp = demo.obj_ptr_tokens(ptrs, torch.tensor([1.0, 2.0, -3.0]), max_abs_pos=6)
        assert pt.shape == pp.shape == (12, 2, 32)  # each pointer -> C/Cm = 4 tokens
        assert torch.equal(pt[:4, 0].reshape(-1), heads.obj_ptr[0])
        assert demo.obj_ptr_temporal_encoding(torch.arange(5.0), 6).shape == (5, 32)
        memory = torch.cat([sm, sm2, pt])
        memory_pos = torch.cat([sp, sp2, pp])
        out = demo.condition_on_memory(vf, pos, memory, memory_pos, num_obj_ptr_tokens=12)
        assert out.shape == vf.shape
        tracked = demo.run_sam_heads(out, high_res_features=demo_feats.high_res_features,
                                     multimask_output=True)
        assert tracked.low_res_masks.shape == (2, 1, 64, 64)


def test_occlusion_semantics():
    torch.manual_seed(1)
    model = build_model("sam2_demo")
    head = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.bias.fill_(-1e4)  # object judged absent everywhere
    with torch.inference_mode():
        f = model.encode_image(torch.randn(1, 3, 256, 256))
        out = model.run_sam_heads(model.add_no_mem_embed(f.vision_features),
                                  high_res_features=f.high_res_features, multimask_output=True)
        assert (out.low_res_multimasks == NO_OBJ_SCORE).all()
        assert torch.equal(out.obj_ptr, model.no_obj_ptr.expand(1, -1))
        absent, _ = model.encode_memory(f.vision_features, out.high_res_masks,
                                        out.object_score_logits, is_mask_from_pts=False)
        present, _ = model.encode_memory(f.vision_features, out.high_res_masks,
                                         torch.ones(1, 1), is_mask_from_pts=False)
        diff = (absent - present)[0].flatten(1)  # (Cm, hw)
        assert torch.allclose(diff, model.no_obj_embed_spatial.view(-1, 1).expand_as(diff),
                              atol=1e-6)


def test_mask_as_output(demo, demo_feats):
    vf = demo_feats.vision_features[:1]
    hr = tuple(t[:1] for t in demo_feats.high_res_features)
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 40:120, 60:200] = 1
    with torch.inference_mode():
        out = demo.mask_as_output(vf, hr, mask)
        empty = demo.mask_as_output(vf, hr, torch.zeros_like(mask))
    assert out.high_res_masks.shape == (1, 1, 256, 256)
    assert out.low_res_masks.shape == (1, 1, 64, 64)
    assert out.high_res_masks.max() == 10 and out.high_res_masks.min() == -10
    assert out.object_score_logits.item() == 10 and empty.object_score_logits.item() == -10
    assert torch.equal(out.ious, torch.ones(1, 1))
    assert torch.equal(empty.obj_ptr, demo.no_obj_ptr)
    assert not torch.equal(out.obj_ptr, demo.no_obj_ptr)


def test_sam2_0_pointer_encoding_is_zero():
    model = build_model("sam2_hiera_tiny", device="meta")
    assert not hasattr(model.obj_ptr_tpos_proj, "weight")
    assert model.no_obj_embed_spatial is None
    pe = build_model("sam2_hiera_tiny").obj_ptr_temporal_encoding(torch.arange(3.0), 15)
    assert pe.shape == (3, 64) and not pe.any()


def test_medsam2_shapes_at_512():
    torch.manual_seed(0)
    model = build_model("medsam2")
    with torch.inference_mode():
        f = model.encode_image(torch.randn(1, 3, 512, 512))
        assert f.vision_features.shape == (1, 256, 32, 32)
        assert [tuple(t.shape) for t in f.high_res_features] == [(1, 32, 128, 128),
                                                                 (1, 64, 64, 64)]
        heads = model.run_sam_heads(model.add_no_mem_embed(f.vision_features),
                                    high_res_features=f.high_res_features)
        assert heads.high_res_masks.shape == (1, 1, 512, 512)
        assert heads.low_res_masks.shape == (1, 1, 128, 128)
        mem, pos = model.encode_memory(f.vision_features, heads.high_res_masks,
                                       heads.object_score_logits, is_mask_from_pts=True)
        assert mem.shape == (1, 64, 32, 32)
        sm, sp = model.spatial_memory_tokens(mem, pos, 0)
        out = model.condition_on_memory(f.vision_features, f.vision_pos_enc, sm, sp, 0)
        assert out.shape == (1, 256, 32, 32)


def test_fast_decoder_paths_equal_the_plain_ones():
    """The folded cross-attentions and the matmul deconvolutions (inference) compute the same
    function as standard attention / ConvTranspose2d (training and autograd path)."""
    from napari_sam2.model.transformer import Attention

    torch.manual_seed(0)
    attn = Attention(128, 8, 2)
    q, k = torch.randn(2, 7, 128), torch.randn(2, 256, 128)
    with torch.no_grad():
        ref = attn(q, k, k)
        assert torch.allclose(attn.forward_few_queries(q, k, k), ref, atol=1e-5, rtol=1e-4)
        ref = attn(k, q, q)
        assert torch.allclose(attn.forward_few_keys(k, q, q), ref, atol=1e-5, rtol=1e-4)
    dec = build_model("sam2_demo").sam_mask_decoder
    dc1 = dec.output_upscaling[0]
    x = torch.randn(2, 128, 16, 16)
    skip = torch.randn(1, 32, 32, 32)
    ref = (dc1(x) + skip).permute(0, 2, 3, 1)
    with torch.no_grad():
        fast = dec._deconv2x2_add(x.permute(0, 2, 3, 1).contiguous(), dc1, skip)
    assert torch.allclose(fast, ref, atol=1e-5)
    graded = dec._deconv2x2_add(x.permute(0, 2, 3, 1).contiguous(), dc1, skip)
    assert graded.requires_grad and torch.allclose(graded, ref, atol=1e-5)


def test_training_step_backpropagates_through_every_part():
    torch.manual_seed(0)
    model = build_model("sam2_demo").train()
    f = model.encode_image(torch.randn(1, 3, 256, 256))
    heads = model.run_sam_heads(model.add_no_mem_embed(f.vision_features),
                                point_coords=torch.tensor([[[50.0, 60.0]]]),
                                point_labels=torch.tensor([[1]]),
                                high_res_features=f.high_res_features, multimask_output=True)
    mem, pos = model.encode_memory(f.vision_features, heads.high_res_masks,
                                   heads.object_score_logits, is_mask_from_pts=True)
    sm, sp = model.spatial_memory_tokens(mem, pos, 0)
    pt, pp = model.obj_ptr_tokens(heads.obj_ptr[None], torch.tensor([1.0]), 6)
    cond = model.condition_on_memory(f.vision_features, f.vision_pos_enc, torch.cat([sm, pt]),
                                     torch.cat([sp, pp]), pt.shape[0])
    out = model.run_sam_heads(cond, high_res_features=f.high_res_features, multimask_output=True)
    loss = out.low_res_multimasks.sigmoid().mean() + out.ious.sum() + out.obj_ptr.sum()
    loss.backward()
    for name in ("image_encoder.trunk.pos_embed", "memory_attention.layers.0.linear1.weight",
                 "memory_encoder.fuser.layers.0.gamma", "obj_ptr_tpos_proj.weight",
                 "sam_mask_decoder.output_upscaling.0.weight", "maskmem_tpos_enc"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
