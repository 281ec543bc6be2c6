"""ImagePredictor on a small random-weight model (real torch, CPU): API, shapes, bad input."""

import numpy as np
import pytest
import torch

from napari_sam2.engine import ImageEmbedding, ImagePredictor, MaskPrediction
from napari_sam2.engine import transforms as T
from napari_sam2.engine.postprocess import postprocess_logits

H, W = 60, 80


@pytest.fixture(scope="module")
def model():
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    return build_model("sam2_demo")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 50, (H, W))
    yy, xx = np.mgrid[:H, :W]
    img[(yy - 30) ** 2 + (xx - 40) ** 2 < 150] += 800
    return img.clip(0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def predictor(model, image):
    p = ImagePredictor(model)
    p.set_image(image)
    return p


def test_encode_shapes_nbytes_and_purity(model, image):
    p = ImagePredictor(model)
    emb = p.encode(image)
    assert p.embedding is None  # encode does not touch the state
    S, C = model.config.image_size, model.config.hidden_dim
    h = S // 16
    assert isinstance(emb, ImageEmbedding)
    assert emb.original_size == (H, W)
    assert emb.image_embed.shape == (1, C, h, h)
    assert emb.high_res_features[0].shape == (1, C // 8, 4 * h, 4 * h)
    assert emb.high_res_features[1].shape == (1, C // 4, 2 * h, 2 * h)
    n = sum(t.numel() * 4 for t in (emb.image_embed, *emb.high_res_features))
    n += emb.decoder_cache.nbytes
    assert emb.nbytes == n
    assert torch.is_inference(emb.image_embed)  # computed under inference_mode
    # the stored embedding adds no_mem_embed to the raw stride-16 features
    x = T.preprocess_image(image, S)
    with torch.inference_mode():
        raw = model.encode_image(x).vision_features
    torch.testing.assert_close(emb.image_embed, raw + model.no_mem_embed.view(1, -1, 1, 1))


def test_predict_multimask_and_single(predictor):
    S = predictor.image_size
    for multi, m in ((True, 3), (False, 1)):
        pred = predictor.predict(points=[[30, 40]], labels=[1], multimask_output=multi)
        assert isinstance(pred, MaskPrediction)
        assert pred.masks.shape == (m, H, W) and pred.masks.dtype == bool
        assert pred.iou_scores.shape == (m,) and pred.iou_scores.dtype == np.float32
        assert pred.low_res_logits.shape == (m, S // 4, S // 4)
        assert pred.low_res_logits.dtype == np.float32
        assert isinstance(pred.object_score_logits, float)
        assert pred.best.shape == (H, W)
        assert pred.scores is pred.iou_scores
        alias = predictor.predict(points=[[30, 40]], labels=[1], multimask=multi)
        np.testing.assert_array_equal(alias.low_res_logits, pred.low_res_logits)
        # masks are the upsampled low-res logits (no clamping reached here)
        up = T.upsample_logits(torch.from_numpy(pred.low_res_logits)[None], (H, W))[0] > 0
        np.testing.assert_array_equal(pred.masks, up.numpy())


def test_prompt_forms_are_equivalent(predictor):
    a = predictor.predict(points=np.array([[30.0, 40.0]]), labels=np.array([1]))
    b = predictor.predict(points=(30, 40), labels=1)
    c = predictor.predict(points=[[30, 40]], labels=[True])
    for other in (b, c):
        np.testing.assert_array_equal(a.low_res_logits, other.low_res_logits)
    box_a = predictor.predict(box=(10, 20, 50, 60))
    box_b = predictor.predict(box=[[10, 20], [50, 60]])
    np.testing.assert_array_equal(box_a.low_res_logits, box_b.low_res_logits)


def test_each_prompt_kind_matters(predictor):
    base = predictor.predict(points=[[30, 40]], labels=[1])
    neg = predictor.predict(points=[[30, 40], [5, 5]], labels=[1, 0])
    box = predictor.predict(points=[[30, 40]], labels=[1], box=(10, 20, 50, 60))
    refined = predictor.predict(
        points=[[30, 40]], labels=[1], mask_input=base.low_res_logits[base.best_index]
    )
    mask_only = predictor.predict(mask_input=base.low_res_logits[0])
    for other in (neg, box, refined, mask_only):
        assert not np.array_equal(base.low_res_logits, other.low_res_logits)


def test_embedding_argument_overrides_state(model, image, predictor):
    other = np.ascontiguousarray(image[::-1])
    emb = predictor.encode(other)
    p2 = ImagePredictor(model)
    p2.set_image(other)
    a = predictor.predict(points=[[30, 40]], labels=[1], embedding=emb)
    b = p2.predict(points=[[30, 40]], labels=[1])
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)
    with pytest.raises(TypeError, match="ImageEmbedding"):
        predictor.predict(points=[[1, 1]], labels=[1], embedding=emb.image_embed)
    wrong = type(emb)(emb.image_embed[:, :8], emb.high_res_features, emb.original_size)
    with pytest.raises(ValueError, match="another model"):
        predictor.predict(points=[[1, 1]], labels=[1], embedding=wrong)


def test_grey_rgb_and_intensity_range(model, image):
    p = ImagePredictor(model)
    grey = p.encode(image)
    rgb = p.encode(np.repeat(image[..., None], 3, axis=2))
    torch.testing.assert_close(grey.image_embed, rgb.image_embed, rtol=0, atol=0)
    same = p.encode(image, intensity_range=(int(image.min()), int(image.max())))
    torch.testing.assert_close(grey.image_embed, same.image_embed, rtol=1e-5, atol=1e-5)
    narrow = p.encode(image, intensity_range=(900, 1100))
    assert not torch.allclose(grey.image_embed, narrow.image_embed)


def test_hole_filling_and_sprinkle_removal(model, predictor):
    plain = predictor.predict(points=[[30, 40]], labels=[1])
    filled = ImagePredictor(model, max_hole_area=200, max_sprinkle_area=50)
    got = filled.predict(points=[[30, 40]], labels=[1], embedding=predictor.embedding)
    np.testing.assert_array_equal(got.low_res_logits, plain.low_res_logits)  # returned raw
    expect = postprocess_logits(
        torch.from_numpy(plain.low_res_logits)[None], max_hole_area=200, max_sprinkle_area=50
    )
    expect = (T.upsample_logits(expect, (H, W))[0] > 0).numpy()
    np.testing.assert_array_equal(got.masks, expect)
    with pytest.raises(ValueError, match="max_hole_area"):
        ImagePredictor(model, max_hole_area=-1)


def test_low_res_clamped_but_masks_from_raw(model, predictor):
    class Loud(ImagePredictor):  # scale the real decoder's logits far past +-32
        def _decode(self, *args):
            low, iou, obj = super()._decode(*args)
            return low * 1000 - 0.001, iou, obj

    p = Loud(model)
    pred = p.predict(points=[[30, 40]], labels=[1], embedding=predictor.embedding)
    assert np.abs(pred.low_res_logits).max() == 32.0
    with torch.inference_mode():
        low, _, _ = p._decode(predictor.embedding, *_prompt(p, [[30, 40]], [1]), None, True)
    raw = T.upsample_logits(low.float(), (H, W))[0] > 0
    np.testing.assert_array_equal(pred.masks, raw.numpy())


def _prompt(p, pts, lbl):
    xy = T.points_to_model(np.asarray(pts, float), (H, W), p.image_size)
    return torch.from_numpy(xy)[None], torch.tensor([lbl], dtype=torch.int32)


def test_one_pixel_image(model):
    p = ImagePredictor(model)
    p.set_image(np.array([[7]], np.uint8))
    pred = p.predict(points=[[0, 0]], labels=[1])
    assert pred.masks.shape == (3, 1, 1)
    pred = p.predict(box=(0, 0, 0, 0), multimask_output=False)
    assert pred.masks.shape == (1, 1, 1)


def test_constant_images_encode_and_non_finite_ones_raise(model):
    p = ImagePredictor(model)
    emb = p.encode(np.zeros((20, 30), np.float32))
    assert torch.isfinite(emb.image_embed).all()
    p.set_image(np.ones((20, 30), np.float32))
    before = p.embedding
    img = np.ones((20, 30), np.float32)
    img[3, 4] = np.nan
    img[5, 6] = np.inf
    with pytest.raises(ValueError, match="image contains 2 NaN or infinite.*nan_to_num"):
        p.set_image(img)
    assert p.embedding is before  # the predictor is unchanged


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({}, ValueError, "no prompt"),
        ({"points": [[30, 40]]}, ValueError, "labels are required"),
        ({"labels": [1]}, ValueError, "without points"),
        ({"points": [[30, 40]], "labels": [1, 0]}, ValueError, "one label per point"),
        ({"points": [[30, 40]], "labels": [2]}, ValueError, r"1 \(foreground\) or 0"),
        ({"points": [[30, 40, 1]], "labels": [1]}, ValueError, r"\(N, 2\)"),
        ({"points": [[np.nan, 4]], "labels": [1]}, ValueError, "NaN"),
        ({"points": [[H + 1, 4]], "labels": [1]}, ValueError, "outside"),
        ({"points": [[-0.6, 4]], "labels": [1]}, ValueError, "outside"),
        ({"points": [["a", 4]], "labels": [1]}, TypeError, "numbers"),
        ({"box": (50, 20, 10, 60)}, ValueError, "row1 < row0"),
        ({"box": (10, 60, 50, 20)}, ValueError, "col1 < col0"),
        ({"box": (10, 20, 50)}, ValueError, "4 numbers"),
        ({"box": (10, 20, 50, W + 5)}, ValueError, "outside"),
        ({"mask_input": np.zeros((10, 10))}, ValueError, "low-res logits of shape"),
        ({"mask_input": np.zeros((64, 64), bool)}, TypeError, "not a bool"),
    ],
)
def test_bad_prompts(predictor, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        predictor.predict(**kwargs)


def test_edges_of_the_extent_are_accepted(predictor):
    for pred in (
        predictor.predict(points=[[-0.5, -0.5], [H, W]], labels=[1, 0]),
        predictor.predict(box=(0, 0, H, W)),
        predictor.predict(points=np.zeros((0, 2)), labels=[], box=(0, 0, 10, 10)),
    ):
        assert pred.masks.shape[1:] == (H, W) and pred.masks.dtype == bool
        assert len(pred.iou_scores) == len(pred.masks) and np.isfinite(pred.iou_scores).all()


def test_no_image_and_bad_images(model):
    p = ImagePredictor(model)
    with pytest.raises(RuntimeError, match="set_image"):
        p.predict(points=[[1, 1]], labels=[1])
    with pytest.raises(ValueError, match="RGBA"):
        p.set_image(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="dimensions"):
        p.set_image(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="intensity_range"):
        p.set_image(np.zeros((8, 8), np.uint16), intensity_range=(3, 3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"points": [[30, 40]], "labels": [1]},
        {"points": [[30, 40], [5, 70]], "labels": [1, 0], "multimask_output": False},
        {"box": (10, 20, 50, 60), "points": [[2, 2]], "labels": [0]},
        {"box": (10, 20, 50, 60), "multimask_output": False},
    ],
)
@pytest.mark.parametrize("with_mask", [False, True])
def test_fast_decoder_equals_prompt_and_decode(model, predictor, kwargs, with_mask):
    """The folded/cached decoder computes the same function as the model's decoder."""
    plain = ImagePredictor(model, fast_decoder=False)
    assert predictor.fast_decoder and not plain.fast_decoder
    emb = predictor.embedding
    if with_mask:
        kwargs = dict(kwargs, mask_input=predictor.predict(points=[[30, 40]], labels=[1])
                      .low_res_logits[0])
    a = predictor.predict(**kwargs)
    b = plain.predict(embedding=emb, **kwargs)
    scale = np.abs(b.low_res_logits).max()
    assert np.abs(a.low_res_logits - b.low_res_logits).max() <= 1e-5 * scale
    np.testing.assert_allclose(a.iou_scores, b.iou_scores, rtol=0, atol=1e-6)
    assert a.object_score_logits == pytest.approx(b.object_score_logits, abs=1e-5)
    assert (a.masks != b.masks).mean() < 1e-3


def test_decoder_cache_layout_round_trips(predictor):
    """The cached high-res features are the encoder's, rearranged (plus the conv bias)."""
    emb = predictor.embedding
    cache = emb.decoder_cache
    dec = predictor.model.sam_mask_decoder
    f0, f1 = emb.high_res_features
    c0, c1 = f0.shape[1], f1.shape[1]
    h = emb.image_embed.shape[-1]
    back1 = (cache.feat_s1 - dec.output_upscaling[0].bias.repeat(4)).view(h, h, 2, 2, c1)
    torch.testing.assert_close(back1.permute(4, 0, 2, 1, 3).reshape(1, c1, 2 * h, 2 * h), f1)
    back0 = (cache.feat_s0 - dec.output_upscaling[3].bias.repeat(4))
    back0 = back0.view(h, h, 2, 2, 2, 2, c0).permute(6, 0, 2, 4, 1, 3, 5)
    torch.testing.assert_close(back0.reshape(1, c0, 4 * h, 4 * h), f0)
    assert emb.nbytes > cache.nbytes > 0
