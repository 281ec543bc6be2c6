"""Frozen configuration dataclasses for SAM 2 and the registry of named variants.

Every number of the 8 official configs (Meta's ``sam2/configs``) lives here; see
``../shared/reference/ARCHITECTURE.md`` §1. The two model-wide sizes are
``Sam2Config.hidden_dim`` (``C``, 256 in the official models: neck, prompt encoder, mask
decoder, memory attention) and ``Sam2Config.mem_dim`` (``Cm``, 64: memory features). Nothing
else in the model hard-codes a size: the feature grid is ``image_size // backbone_stride``.

Component configs hold only what is specific to their module; the shared sizes are passed in
by ``Sam2Config`` when the model is built, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "HieraConfig",
    "FpnNeckConfig",
    "PromptEncoderConfig",
    "MaskDecoderConfig",
    "MemoryAttentionConfig",
    "MemoryEncoderConfig",
    "Sam2Config",
    "VARIANTS",
    "get_config",
]


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk (Meta's ``hieradet.Hiera``); defaults are the tiny model's."""

    embed_dim: int = 96  # channels of stage 1; doubles at each stage (dim_mul)
    num_heads: int = 1  # heads of stage 1; doubles at each stage (head_mul)
    stages: tuple[int, ...] = (1, 2, 7, 2)  # blocks per stage
    global_att_blocks: tuple[int, ...] = (5, 7, 9)  # 0-based blocks with full attention
    window_spec: tuple[int, ...] = (8, 4, 14, 7)  # window size per stage (tokens)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)  # pos_embed grid
    q_pool: int = 3  # number of stage changes with q max-pooling
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    patch_kernel: int = 7
    patch_stride: int = 4
    patch_padding: int = 3
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _positive("HieraConfig.embed_dim", self.embed_dim)
        _positive("HieraConfig.num_heads", self.num_heads)
        if not self.stages or any(s < 1 for s in self.stages):
            raise ValueError(f"HieraConfig.stages must be positive block counts, got {self.stages}")
        if len(self.window_spec) != len(self.stages):
            raise ValueError(
                f"HieraConfig.window_spec needs one window size per stage ({len(self.stages)}), "
                f"got {self.window_spec}"
            )
        if any(w < 0 for w in self.window_spec):
            raise ValueError(f"HieraConfig.window_spec must be >= 0, got {self.window_spec}")
        if not 0 <= self.q_pool < len(self.stages):
            raise ValueError(
                f"HieraConfig.q_pool must be in [0, {len(self.stages) - 1}], got {self.q_pool}"
            )
        n = sum(self.stages)
        bad = [b for b in self.global_att_blocks if not 0 <= b < n]
        if bad:
            raise ValueError(f"HieraConfig.global_att_blocks {bad} outside the {n} blocks")
        if len(self.window_pos_embed_bkg_spatial_size) != 2:
            raise ValueError("HieraConfig.window_pos_embed_bkg_spatial_size must be (h, w)")
        for i, d in enumerate(self.stage_dims):
            if d % self.stage_heads[i]:
                raise ValueError(
                    f"HieraConfig stage {i}: dim {d} is not divisible by "
                    f"{self.stage_heads[i]} heads"
                )

    @property
    def num_blocks(self) -> int:
        return sum(self.stages)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of each stage, e.g. (96, 192, 384, 768) for tiny."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))

    @property
    def stage_heads(self) -> tuple[int, ...]:
        return tuple(int(self.num_heads * self.head_mul**i) for i in range(len(self.stages)))

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """0-based index of the last block of each stage."""
        ends, total = [], 0
        for s in self.stages:
            total += s
            ends.append(total - 1)
        return tuple(ends)

    @property
    def q_pool_blocks(self) -> tuple[int, ...]:
        """Blocks that max-pool their queries (the first block of stages 2..q_pool+1)."""
        return tuple(e + 1 for e in self.stage_ends[: self.q_pool])

    @property
    def total_stride(self) -> int:
        """Stride of the last trunk level relative to the input image."""
        return self.patch_stride * self.q_stride[0] ** self.q_pool


@dataclass(frozen=True)
class FpnNeckConfig:
    """FPN neck (Meta's ``FpnNeck``); input channels come from the trunk's stage dims."""

    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    scalp: int = 1  # drop this many lowest-resolution levels
    pe_temperature: float = 10000.0

    def __post_init__(self) -> None:
        if self.fpn_interp_model not in ("nearest", "bilinear", "bicubic"):
            raise ValueError(
                f"FpnNeckConfig.fpn_interp_model must be nearest, bilinear or bicubic, "
                f"got {self.fpn_interp_model!r}"
            )
        if self.scalp < 0:
            raise ValueError(f"FpnNeckConfig.scalp must be >= 0, got {self.scalp}")


@dataclass(frozen=True)
class PromptEncoderConfig:
    """Prompt encoder: points, boxes (as two points) and a low-res mask logit map."""

    mask_in_chans: int = 16

    def __post_init__(self) -> None:
        if self.mask_in_chans < 4 or self.mask_in_chans % 4:
            raise ValueError(
                f"PromptEncoderConfig.mask_in_chans must be a positive multiple of 4, "
                f"got {self.mask_in_chans}"
            )


@dataclass(frozen=True)
class MaskDecoderConfig:
    """Two-way transformer and mask decoder heads (SAM2Base._build_sam_heads)."""

    num_multimask_outputs: int = 3
    transformer_depth: int = 2
    num_heads: int = 8
    mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_via_stability: bool = True  # build_sam2(apply_postprocessing=True)
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # Ours, not Meta's: an empty single mask (no logit above 0) counts as unstable, so a
    # box or several clicks never answer an empty mask when a multimask candidate has pixels.
    # Meta's rule scores an empty mask 1.0 (stable) and returns it; False restores that.
    empty_single_mask_unstable: bool = True

    def __post_init__(self) -> None:
        for name in ("num_multimask_outputs", "transformer_depth", "num_heads", "mlp_dim",
                     "attention_downsample_rate", "iou_head_hidden_dim"):
            _positive(f"MaskDecoderConfig.{name}", getattr(self, name))
        if self.iou_head_depth < 1:
            raise ValueError(f"MaskDecoderConfig.iou_head_depth must be >= 1, "
                             f"got {self.iou_head_depth}")


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Memory attention: RoPE self-attention, RoPE cross-attention to memories, FFN."""

    num_layers: int = 4
    dim_feedforward: int = 2048
    num_heads: int = 1
    rope_theta: float = 10000.0
    dropout: float = 0.1  # active only in training mode
    pos_enc_at_input: bool = True

    def __post_init__(self) -> None:
        for name in ("num_layers", "dim_feedforward", "num_heads", "rope_theta"):
            _positive(f"MemoryAttentionConfig.{name}", getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MemoryAttentionConfig.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Memory encoder: mask downsampler, pixel-feature projection, CXBlock fuser."""

    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    downsampler_total_stride: int = 16  # must equal Sam2Config.backbone_stride
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    fuser_layer_scale_init: float = 1e-6
    fuser_mlp_ratio: int = 4

    def __post_init__(self) -> None:
        s, t = self.downsampler_stride, self.downsampler_total_stride
        if s < 2 or t < s:
            raise ValueError(f"MemoryEncoderConfig: bad downsampler strides {s}, {t}")
        k = t
        while k % s == 0 and k > 1:
            k //= s
        if k != 1:
            raise ValueError(
                f"MemoryEncoderConfig.downsampler_total_stride {t} must be a power of "
                f"downsampler_stride {s}"
            )
        _positive("MemoryEncoderConfig.fuser_num_layers", self.fuser_num_layers)

    @property
    def downsampler_layers(self) -> int:
        n, t = 0, self.downsampler_total_stride
        while t > 1:
            t //= self.downsampler_stride
            n += 1
        return n


@dataclass(frozen=True)
class Sam2Config:
    """The whole model (Meta's ``SAM2Base`` arguments plus the component configs).

    Flags keep Meta's names. The four that differ between SAM 2.0 and 2.1 are
    ``no_obj_embed_spatial``, ``add_tpos_enc_to_obj_ptrs``, ``proj_tpos_enc_in_obj_ptrs`` and
    ``use_signed_tpos_enc_to_obj_ptrs``.
    """

    name: str = "custom"
    image_encoder: HieraConfig = field(default_factory=HieraConfig)
    neck: FpnNeckConfig = field(default_factory=FpnNeckConfig)
    prompt_encoder: PromptEncoderConfig = field(default_factory=PromptEncoderConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)

    image_size: int = 1024  # S: the model input is (3, S, S)
    backbone_stride: int = 16  # feature grid h = w = S // backbone_stride
    hidden_dim: int = 256  # C
    mem_dim: int = 64  # Cm

    num_maskmem: int = 7
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True  # set by build_sam2_video_predictor
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    # SAM 2.1 flags (all False in SAM 2.0)
    no_obj_embed_spatial: bool = True
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True

    def __post_init__(self) -> None:
        hiera = self.image_encoder
        C, Cm, S = self.hidden_dim, self.mem_dim, self.image_size
        _positive("Sam2Config.hidden_dim", C)
        _positive("Sam2Config.mem_dim", Cm)
        _positive("Sam2Config.image_size", S)
        if C % 8:
            raise ValueError(f"Sam2Config.hidden_dim must be divisible by 8 (C/8 high-res "
                             f"channels), got {C}")
        if C % Cm:
            raise ValueError(f"Sam2Config.hidden_dim {C} must be a multiple of mem_dim {Cm} "
                             f"(each object pointer becomes C/Cm memory tokens)")
        if S % hiera.total_stride:
            raise ValueError(f"Sam2Config.image_size {S} must be divisible by the trunk's total "
                             f"stride {hiera.total_stride}")
        grid0 = S // hiera.patch_stride
        if hiera.window_spec[0] and grid0 % hiera.window_spec[0]:
            raise ValueError(f"Sam2Config.image_size {S}: the patch grid {grid0} must be a "
                             f"multiple of window_spec[0]={hiera.window_spec[0]} "
                             f"(the window position embedding is tiled)")
        levels = len(hiera.stages)
        if not 0 <= self.neck.scalp < levels:
            raise ValueError(f"FpnNeckConfig.scalp must be in [0, {levels - 1}]")
        if any(not 0 <= lv < levels for lv in self.neck.fpn_top_down_levels):
            raise ValueError(f"FpnNeckConfig.fpn_top_down_levels {self.neck.fpn_top_down_levels}"
                             f" must index the {levels} trunk levels")
        strides = [hiera.patch_stride * hiera.q_stride[0] ** min(i, hiera.q_pool)
                   for i in range(levels - self.neck.scalp)]
        if strides[-1] != self.backbone_stride:
            raise ValueError(f"Sam2Config.backbone_stride {self.backbone_stride} must equal the "
                             f"stride of the last kept FPN level ({strides[-1]})")
        if self.use_high_res_features_in_sam and (len(strides) < 3 or strides[-3:] != [
                self.backbone_stride // 4, self.backbone_stride // 2, self.backbone_stride]):
            raise ValueError("use_high_res_features_in_sam needs FPN levels at strides "
                             f"{self.backbone_stride // 4}, {self.backbone_stride // 2} and "
                             f"{self.backbone_stride}; got {strides}")
        if self.memory_encoder.downsampler_total_stride != self.backbone_stride:
            raise ValueError("MemoryEncoderConfig.downsampler_total_stride must equal "
                             f"backbone_stride ({self.backbone_stride})")
        dec = self.mask_decoder
        inner = C // dec.attention_downsample_rate
        if C % dec.attention_downsample_rate or inner % dec.num_heads or C % dec.num_heads:
            raise ValueError(f"MaskDecoderConfig: hidden_dim {C} / downsample rate "
                             f"{dec.attention_downsample_rate} must be divisible by "
                             f"{dec.num_heads} heads")
        mha = self.memory_attention
        if C % mha.num_heads or (C // mha.num_heads) % 4:
            raise ValueError(f"MemoryAttentionConfig: head dim hidden_dim/num_heads = "
                             f"{C}/{mha.num_heads} must be a multiple of 4 (2-D axial RoPE)")
        if self.num_maskmem < 1:
            raise ValueError(f"Sam2Config.num_maskmem must be >= 1, got {self.num_maskmem}")
        if self.max_obj_ptrs_in_encoder < 1:
            raise ValueError("Sam2Config.max_obj_ptrs_in_encoder must be >= 1")
        if self.multimask_min_pt_num > self.multimask_max_pt_num:
            raise ValueError("Sam2Config.multimask_min_pt_num must be <= multimask_max_pt_num")
        if self.memory_temporal_stride_for_eval < 1:
            raise ValueError("Sam2Config.memory_temporal_stride_for_eval must be >= 1")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ValueError("proj_tpos_enc_in_obj_ptrs=True needs add_tpos_enc_to_obj_ptrs=True")
        if self.use_signed_tpos_enc_to_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ValueError("use_signed_tpos_enc_to_obj_ptrs=True needs "
                             "add_tpos_enc_to_obj_ptrs=True")
        if self.pred_obj_scores_mlp and not self.pred_obj_scores:
            raise ValueError("pred_obj_scores_mlp=True needs pred_obj_scores=True")
        if self.fixed_no_obj_ptr and not self.pred_obj_scores:
            raise ValueError("fixed_no_obj_ptr=True needs pred_obj_scores=True")
        if self.soft_no_obj_ptr and not self.pred_obj_scores:
            raise ValueError("soft_no_obj_ptr=True needs pred_obj_scores=True")
        if self.no_obj_embed_spatial and not self.pred_obj_scores:
            raise ValueError("no_obj_embed_spatial=True needs pred_obj_scores=True")
        if not self.use_obj_ptrs_in_encoder:
            raise ValueError("use_obj_ptrs_in_encoder=False is not supported (every official "
                             "config uses object pointers)")
        if not self.directly_add_no_mem_embed:
            raise ValueError("directly_add_no_mem_embed=False is not supported (every official "
                             "config adds no_mem_embed directly)")

    # Derived sizes -------------------------------------------------------------------------
    @property
    def feature_size(self) -> int:
        """h = w of the stride-16 feature map (64 for the official 1024 models)."""
        return self.image_size // self.backbone_stride

    @property
    def low_res_mask_size(self) -> int:
        """Side of the decoder's low-res mask logits (4h; 256 official)."""
        return 4 * self.feature_size

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Trunk level channels from the deepest level up (Meta's neck order)."""
        return tuple(reversed(self.image_encoder.stage_dims))

    @property
    def is_sam2_1(self) -> bool:
        return self.add_tpos_enc_to_obj_ptrs and self.no_obj_embed_spatial


# Variants ---------------------------------------------------------------------------------
_HIERA = {
    "tiny": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2),
                        global_att_blocks=(5, 7, 9), window_spec=(8, 4, 14, 7),
                        window_pos_embed_bkg_spatial_size=(7, 7)),
    "small": HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2),
                         global_att_blocks=(7, 10, 13), window_spec=(8, 4, 14, 7),
                         window_pos_embed_bkg_spatial_size=(7, 7)),
    "base_plus": HieraConfig(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3),
                             global_att_blocks=(12, 16, 20), window_spec=(8, 4, 14, 7),
                             window_pos_embed_bkg_spatial_size=(14, 14)),
    "large": HieraConfig(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4),
                         global_att_blocks=(23, 33, 43), window_spec=(8, 4, 16, 8),
                         window_pos_embed_bkg_spatial_size=(7, 7)),
}

_SAM2_0_FLAGS = dict(no_obj_embed_spatial=False, add_tpos_enc_to_obj_ptrs=False,
                     proj_tpos_enc_in_obj_ptrs=False, use_signed_tpos_enc_to_obj_ptrs=False)


def _official(size: str, version: str) -> Sam2Config:
    name = f"{'sam2.1' if version == '2.1' else 'sam2'}_hiera_{size}"
    flags = {} if version == "2.1" else _SAM2_0_FLAGS
    return Sam2Config(name=name, image_encoder=_HIERA[size], **flags)


VARIANTS: dict[str, Sam2Config] = {}
for _version in ("2.0", "2.1"):
    for _size in _HIERA:
        _cfg = _official(_size, _version)
        VARIANTS[_cfg.name] = _cfg

# MedSAM2: SAM 2.1 tiny fine-tuned at 512 (RoPE tables 32x32); same state-dict keys and shapes.
VARIANTS["medsam2"] = replace(VARIANTS["sam2.1_hiera_tiny"], name="medsam2", image_size=512)

# A small model that trains on a CPU (issue 5's demo model). Tuned by the training engineer.
VARIANTS["sam2_demo"] = Sam2Config(
    name="sam2_demo",
    image_encoder=HieraConfig(embed_dim=32, num_heads=1, stages=(1, 1, 2, 1),
                              global_att_blocks=(3,), window_spec=(8, 4, 4, 2),
                              window_pos_embed_bkg_spatial_size=(4, 4)),
    mask_decoder=MaskDecoderConfig(num_heads=8, mlp_dim=512, iou_head_hidden_dim=128),
    memory_attention=MemoryAttentionConfig(num_layers=2, dim_feedforward=512),
    image_size=256,
    hidden_dim=128,
    mem_dim=32,
    num_maskmem=7,
)


def get_config(name: str) -> Sam2Config:
    """Return the named variant's config; unknown names raise ValueError listing the known."""
    if isinstance(name, Sam2Config):
        return name
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown SAM 2 variant {name!r}; known variants: {known}") from None
