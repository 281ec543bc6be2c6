"""Config registry and the cross-field checks (bad configs raise ValueError)."""

from dataclasses import FrozenInstanceError, replace

import pytest

from napari_sam2.model import VARIANTS, Sam2Config, get_config
from napari_sam2.model.config import (HieraConfig, MaskDecoderConfig, MemoryAttentionConfig,
                                      MemoryEncoderConfig)

OFFICIAL = [f"{v}_hiera_{s}" for v in ("sam2", "sam2.1")
            for s in ("tiny", "small", "base_plus", "large")]


def test_registry_names():
    assert set(VARIANTS) == set(OFFICIAL) | {"medsam2", "sam2_demo"}
    for name, cfg in VARIANTS.items():
        assert cfg.name == name and get_config(name) is cfg


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="sam2.1_hiera_tiny") as err:
        get_config("sam3_hiera_huge")
    assert "sam2_demo" in str(err.value)


def test_configs_are_frozen():
    with pytest.raises(FrozenInstanceError):
        VARIANTS["sam2.1_hiera_tiny"].image_size = 512


def test_sam2_0_and_2_1_differ_in_exactly_four_flags():
    for size in ("tiny", "small", "base_plus", "large"):
        a, b = VARIANTS[f"sam2_hiera_{size}"], VARIANTS[f"sam2.1_hiera_{size}"]
        diff = {k for k in a.__dataclass_fields__ if getattr(a, k) != getattr(b, k)}
        assert diff == {"name", "no_obj_embed_spatial", "add_tpos_enc_to_obj_ptrs",
                        "proj_tpos_enc_in_obj_ptrs", "use_signed_tpos_enc_to_obj_ptrs"}


def test_official_hiera_schedules():
    t = VARIANTS["sam2.1_hiera_tiny"].image_encoder
    assert t.stage_ends == (0, 2, 9, 11) and t.q_pool_blocks == (1, 3, 10)
    large = VARIANTS["sam2_hiera_large"].image_encoder
    assert large.stage_ends == (1, 7, 43, 47) and large.q_pool_blocks == (2, 8, 44)
    assert VARIANTS["sam2.1_hiera_base_plus"].backbone_channel_list == (896, 448, 224, 112)


def test_demo_sizes_derive_from_config():
    d = VARIANTS["sam2_demo"]
    assert (d.image_size, d.hidden_dim, d.mem_dim, d.feature_size) == (256, 128, 32, 16)
    assert d.low_res_mask_size == 64 and d.is_sam2_1


BASE = VARIANTS["sam2.1_hiera_tiny"]


@pytest.mark.parametrize("make, message", [
    (lambda: replace(BASE, image_size=1000), "divisible"),
    (lambda: replace(BASE, image_encoder=HieraConfig(window_spec=(12, 4, 14, 7))), "window_spec"),
    (lambda: replace(BASE, hidden_dim=250), "divisible by 8"),
    (lambda: replace(BASE, mem_dim=48), "multiple of mem_dim"),
    (lambda: replace(BASE, num_maskmem=0), "num_maskmem"),
    (lambda: replace(BASE, add_tpos_enc_to_obj_ptrs=False), "needs add_tpos_enc"),
    (lambda: replace(BASE, pred_obj_scores=False), "needs pred_obj_scores"),
    (lambda: replace(BASE, multimask_min_pt_num=2), "multimask_min_pt_num"),
    (lambda: replace(BASE, backbone_stride=32), "backbone_stride"),
    (lambda: replace(BASE, mask_decoder=MaskDecoderConfig(num_heads=7)), "heads"),
    (lambda: replace(BASE, memory_attention=MemoryAttentionConfig(num_heads=3)), "RoPE"),
    (lambda: replace(BASE, use_obj_ptrs_in_encoder=False), "not supported"),
    (lambda: HieraConfig(stages=(1, 2, 7, 2), window_spec=(8, 4, 14)), "window_spec"),
    (lambda: HieraConfig(global_att_blocks=(12,)), "outside"),
    (lambda: HieraConfig(q_pool=4), "q_pool"),
    (lambda: HieraConfig(embed_dim=96, num_heads=5), "divisible"),
    (lambda: MemoryEncoderConfig(downsampler_total_stride=12), "power"),
    (lambda: MemoryAttentionConfig(dropout=1.0), "dropout"),
])
def test_bad_configs_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_custom_sizes_are_accepted():
    cfg = replace(VARIANTS["sam2_demo"], image_size=512)
    assert cfg.feature_size == 32
    assert isinstance(Sam2Config(), Sam2Config)
