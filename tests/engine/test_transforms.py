"""Pre/post-processing: intensity rules, Meta's resize, coordinates, upsampling."""

import numpy as np
import pytest
import torch

from napari_sam2.engine import transforms as T


# ----------------------------------------------------------------------------- images
def test_check_image_accepts_grey_rgb_and_single_channel():
    assert T.check_image(np.zeros((4, 5), np.uint16)).shape == (4, 5)
    assert T.check_image(np.zeros((4, 5, 3), np.float32)).shape == (4, 5, 3)
    assert T.check_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5)
    assert T.check_image(np.ones((4, 5), bool)).dtype == np.uint8
    assert T.check_image([[1, 2], [3, 4]]).shape == (2, 2)


@pytest.mark.parametrize(
    "shape, words",
    [
        ((8, 8, 4), "RGBA"),
        ((8, 8, 2), "2 channels"),
        ((3, 40, 50), "channels must be last"),
        ((2, 8, 8, 3), "4 dimensions"),
        ((8,), "1 dimensions"),
        ((0, 5), "empty"),
    ],
)
def test_check_image_rejects_bad_shapes(shape, words):
    with pytest.raises(ValueError, match=words):
        T.check_image(np.zeros(shape, np.uint8))


def test_check_image_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        T.check_image(np.zeros((4, 4), complex))
    with pytest.raises(TypeError, match="numeric"):
        T.check_image(np.array([["a", "b"]]))


def test_uint8_divides_by_255_exactly():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = T.map_intensity(img)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img.astype(np.float32) / np.float32(255))


def test_other_dtypes_use_min_and_max():
    img = np.array([[100, 300], [500, 1100]], np.uint16)
    np.testing.assert_allclose(T.map_intensity(img), [[0, 0.2], [0.4, 1.0]], atol=1e-7)
    f = np.array([[-2.0, 0.0], [2.0, 6.0]])
    np.testing.assert_allclose(T.map_intensity(f), [[0, 0.25], [0.5, 1.0]], atol=1e-7)
    big = np.array([[0, 2**40], [2**41, 2**42]], np.int64)
    np.testing.assert_allclose(T.map_intensity(big), [[0, 0.25], [0.5, 1.0]], atol=1e-7)


def test_intensity_range_maps_and_clips():
    img = np.array([[0, 100], [150, 65535]], np.uint16)
    out = T.map_intensity(img, intensity_range=(100, 200))
    np.testing.assert_allclose(out, [[0, 0], [0.5, 1]], atol=1e-7)
    # uint8 with a range follows the range, not /255
    out8 = T.map_intensity(np.array([[10, 20, 30]], np.uint8), intensity_range=(10, 30))
    np.testing.assert_allclose(out8, [[0, 0.5, 1]], atol=1e-7)


@pytest.mark.parametrize("bad", [(5, 5), (5, 1), (0, np.inf), (np.nan, 1), (1,), "ab", 3])
def test_bad_intensity_range(bad):
    with pytest.raises(ValueError, match="intensity_range"):
        T.map_intensity(np.zeros((2, 2), np.uint16), intensity_range=bad)


def test_ranges_beyond_float32_or_overflowing_map_without_nan():
    big = np.finfo(np.float64).max
    img = np.array([[-big, big], [0.0, 1.0]])  # the span max - min overflows float64
    with np.errstate(all="raise"):
        out = T.map_intensity(img)
        np.testing.assert_allclose(out, [[0, 1], [0.5, 0.5]], atol=1e-7)
        grey = T.map_intensity(np.array([[0, 7]], np.uint16), intensity_range=(-1e300, 1e300))
        np.testing.assert_allclose(grey, [[0.5, 0.5]], atol=1e-7)
        f32 = np.array([[-3e38, 3e38]], np.float32)  # span beyond float32
        np.testing.assert_allclose(T.map_intensity(f32), [[0, 1]], atol=1e-7)
        assert torch.isfinite(T.preprocess_image(img, 16)).all()


def test_constant_image_gives_zeros_not_nan():
    for img in (np.full((3, 3), 7, np.uint16), np.full((3, 3), 2.5), np.zeros((1, 1))):
        out = T.map_intensity(img)
        assert np.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_an_error_that_says_what_to_pass(value):
    img = np.ones((3, 4, 3), np.float32)
    img[2, 1, 0] = value
    for call in (lambda: T.check_image(img), lambda: T.map_intensity(img, (0, 1)),
                 lambda: T.preprocess_image(img, 32)):
        with pytest.raises(ValueError, match=r"image contains 1 NaN or infinite .*\(2, 1\).*"
                                             r"nan_to_num"):
            call()
    with pytest.raises(ValueError, match="frame 7 contains"):
        T.check_image(img, "frame 7")
    T.check_image(np.nan_to_num(img))  # what the message suggests passes


# ----------------------------------------------------------------------------- resize
def test_resize_equals_pil_bilinear_antialias():
    """PIL's float BILINEAR resize is an independent implementation of the same filter."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    x = rng.random((120, 160), dtype=np.float32)
    for size in (64, 256):  # shrink (antialias active) and enlarge
        ours = T.resize_to_model(torch.from_numpy(x)[None, None], size)[0, 0].numpy()
        ref = np.asarray(Image.fromarray(x, mode="F").resize((size, size), Image.BILINEAR))
        np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_preprocess_rgb_uint8_pipeline():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    t = T.preprocess_image(img, 32)
    assert t.shape == (1, 3, 32, 32) and t.dtype == torch.float32
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    x = torch.nn.functional.interpolate(
        x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False
    )
    mean = torch.tensor(T.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(t, (x - mean) / std, rtol=0, atol=0)


def test_grey_equals_repeated_rgb():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 4000, (37, 53), dtype=np.uint16)
    a = T.preprocess_image(g, 64)
    b = T.preprocess_image(np.repeat(g[..., None], 3, axis=2), 64)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # channels differ only by the ImageNet constants
    mean = torch.tensor(T.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD).view(3, 1, 1)
    scaled = a[0] * std + mean
    torch.testing.assert_close(scaled[0], scaled[2], atol=1e-6, rtol=0)


def test_one_pixel_image():
    t = T.preprocess_image(np.array([[5]], np.uint16), 16)
    assert t.shape == (1, 3, 16, 16) and torch.isfinite(t).all()


# ----------------------------------------------------------------------------- coordinates
def test_points_to_model_swaps_and_scales():
    xy = T.points_to_model([[10.0, 20.0], [0, 0]], orig_hw=(100, 200), image_size=1024)
    np.testing.assert_allclose(xy, [[20 / 200 * 1024, 10 / 100 * 1024], [0, 0]])
    assert xy.dtype == np.float32


def test_box_to_model_points_are_two_xy_corners():
    pts = T.box_to_model_points((10, 20, 30, 60), orig_hw=(100, 200), image_size=100)
    np.testing.assert_allclose(pts, [[10, 10], [30, 30]])


# ----------------------------------------------------------------------------- upsampling
def test_upsample_logits_align_corners_false():
    low = torch.tensor([[[[0.0, 4.0]]]])  # (1, 1, 1, 2)
    up = T.upsample_logits(low, (1, 4))
    # half-pixel centres: output x=0.25,0.75 of input cell 0 ... -> 0, 1, 3, 4
    torch.testing.assert_close(up, torch.tensor([[[[0.0, 1.0, 3.0, 4.0]]]]))
    same = torch.randn(1, 3, 8, 8)
    assert T.upsample_logits(same, (8, 8)) is same
    assert T.upsample_logits(same, (5, 13)).shape == (1, 3, 5, 13)
