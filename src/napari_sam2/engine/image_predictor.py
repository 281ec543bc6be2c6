"""Promptable segmentation of single images (the behaviour of Meta's ``SAM2ImagePredictor``).

    predictor = ImagePredictor(model)
    predictor.set_image(image)                      # (H, W) grey or (H, W, 3), any dtype
    pred = predictor.predict(points=[[120, 80]], labels=[1])   # (row, col), napari order
    pred.best                                       # (H, W) bool

Encoding costs the image encoder once; every ``predict`` afterwards runs only the prompt
encoder and the mask decoder, with everything prompt-independent (dense positional encoding,
no-mask embedding) cached, and upsamples only the masks it returns.

Memory scales with the image: ``encode`` maps and resizes the image in blocks of rows, and
``predict`` upsamples and thresholds the masks tile by tile straight into the (M, H, W) bool
result, so no full-resolution float32 copy of the image or of any mask is made
(``transforms.preprocess_image``, ``transforms.logits_to_masks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from napari_sam2.engine import transforms as T
from napari_sam2.engine.device import autocast, uses_bfloat16
from napari_sam2.engine.postprocess import postprocess_logits
from napari_sam2.engine.prompts import check_box, check_mask_input, check_points
from napari_sam2.engine.types import MaskPrediction
from napari_sam2.engine.windowed_image import WindowedImage
from napari_sam2.engine.windows import check_window
from napari_sam2.model.mask_decoder import DecoderCache, MaskDecoder, flat_tokens

LOW_RES_CLAMP = 32.0


@dataclass(frozen=True)
class ImageEmbedding:
    """The image encoder's output for one image, ready for any number of prompts.

    Attributes:
        image_embed: (1, C, h, w) stride-16 features with ``no_mem_embed`` added.
        high_res_features: ((1, C/8, 4h, 4w), (1, C/4, 2h, 2w)) after conv_s0 / conv_s1.
        original_size: (H, W) of the image that was encoded.
        decoder_cache: the mask decoder's ``precompute`` for fast clicks (or None).
    """

    image_embed: torch.Tensor
    high_res_features: tuple[torch.Tensor, torch.Tensor]
    original_size: tuple[int, int]
    decoder_cache: DecoderCache | None = None

    @property
    def nbytes(self) -> int:
        """Memory held by the tensors (16 MiB for an official model in float32, plus 22 MiB
        of decoder cache)."""
        tensors = (self.image_embed, *self.high_res_features)
        extra = 0 if self.decoder_cache is None else self.decoder_cache.nbytes
        return int(sum(t.numel() * t.element_size() for t in tensors)) + extra

    @property
    def device(self) -> torch.device:
        return self.image_embed.device


class ImagePredictor:
    """Single-image predictor over a ``Sam2Model``.

    Args:
        model: a ``napari_sam2.model.Sam2Model`` (eval mode; its device is used).
        max_hole_area: fill background holes up to this area (pixels of the low-res 4h x 4w
            logits) in the returned masks; 0 (default) is off, as Meta's CPU outputs.
        max_sprinkle_area: remove foreground specks up to this area (same units); 0 is off.
        bfloat16: None (default): bfloat16 autocast on CUDA GPUs and CPUs with native bfloat16
            (AVX512-BF16 / AMX; ``NAPARI_SAM2_BFLOAT16`` overrides, see ``engine/device.py``),
            float32 elsewhere; False: float32 everywhere (use it to compare with float32
            references); True: bfloat16, a ValueError on a device without it.
        fast_decoder: True (default): clicks use the mask decoder's ``decode_cached`` (the
            same function with about half the work); False: ``Sam2Model.prompt_and_decode``.
    """

    def __init__(
        self,
        model,
        *,
        max_hole_area: int = 0,
        max_sprinkle_area: int = 0,
        bfloat16: bool | None = None,
        fast_decoder: bool = True,
    ) -> None:
        for name, v in (("max_hole_area", max_hole_area), ("max_sprinkle_area", max_sprinkle_area)):
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        self.model = model
        self.max_hole_area = int(max_hole_area)
        self.max_sprinkle_area = int(max_sprinkle_area)
        self.bfloat16 = bfloat16
        self.fast_decoder = bool(fast_decoder) and fast_decoder_supported(model)
        self.embedding: ImageEmbedding | None = None
        self.windowed: WindowedImage | None = None
        self._dense_pe_key: tuple | None = None
        self._dense_pe: torch.Tensor | None = None
        self._key_pe: torch.Tensor | None = None

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        """S: the side of the square model input."""
        return int(self.model.config.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def uses_bfloat16(self) -> bool:
        """Whether the model runs under bfloat16 autocast (``bfloat16`` and the device)."""
        return uses_bfloat16(self.device, self.bfloat16)

    def _autocast(self):
        return autocast(self.device, enabled=self.bfloat16)

    # ------------------------------------------------------------------ encoding
    def encode(self, image, *, intensity_range=None) -> ImageEmbedding:
        """Run the image encoder on one image (does not change the predictor's state).

        Args:
            image: (H, W) grey, (H, W, 1) or (H, W, 3) RGB, any real dtype; see
                ``transforms.map_intensity`` for how values map to [0, 1].
            intensity_range: optional (lo, hi) mapped to 0 and 1 (e.g. contrast limits).

        Returns:
            ``ImageEmbedding``.
        """
        arr = T.check_image(image)
        x = T.preprocess_image(arr, self.image_size, intensity_range=intensity_range,
                               device=self.device)  # (1, 3, S, S)
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode_image(x)
            embed = self.model.add_no_mem_embed(feats.vision_features)
            hr0, hr1 = feats.high_res_features
            cache = None
            if self.fast_decoder:
                _, no_mask = self.model.sam_prompt_encoder(None, None, batch_size=1)
                cache = self.model.sam_mask_decoder.precompute(embed, self._cached_key_pe(),
                                                               no_mask, (hr0, hr1))
        return ImageEmbedding(embed, (hr0, hr1), (int(arr.shape[0]), int(arr.shape[1])), cache)

    def set_image(self, image, *, intensity_range=None, window=None) -> ImageEmbedding | None:
        """Encode ``image`` and keep it as ``self.embedding`` for later ``predict`` calls.

        ``window``: None (default): the whole image, encoded now. ``"auto"`` or a side in
        pixels: the image is kept unread (any array-like, or a list of levels of a multiscale
        image, finest first) and each ``predict`` reads and encodes only a window around its
        prompt (``windowed_image.py``; its masks come with ``MaskPrediction.window``). Without
        ``intensity_range`` each window is then mapped by its own min and max.
        """
        self.windowed = None
        if window is not None and check_window(window) is not None:
            self.embedding = None
            self.windowed = WindowedImage(image, window, intensity_range)
            return None
        self.embedding = self.encode(image, intensity_range=intensity_range)
        return self.embedding

    # ------------------------------------------------------------------ prompting
    def predict(
        self,
        *,
        points=None,
        labels=None,
        box=None,
        mask_input=None,
        multimask_output: bool = True,
        embedding: ImageEmbedding | None = None,
        multimask: bool | None = None,
    ) -> MaskPrediction:
        """Masks for a prompt on the current (or given) image embedding.

        Args:
            points: (N, 2) (row, col) pixel coordinates (floats allowed), or one (2,) point.
            labels: (N,) 1 = foreground, 0 = background; required with ``points``.
            box: (r0, c0, r1, c1) with r0 <= r1 and c0 <= c1.
            mask_input: (4h, 4w) logits (or (1, 4h, 4w)), typically
                ``previous.low_res_logits[previous.best_index]``.
            multimask_output: True: three candidate masks; False: one.
            embedding: an ``ImageEmbedding`` from ``encode``; default ``self.embedding`` (or,
                after ``set_image(..., window=...)``, the window the prompt needs).
            multimask: alias of ``multimask_output`` (wins when given).

        Coordinates may lie anywhere in the image's extent, -0.5 <= row <= H and
        -0.5 <= col <= W (napari puts pixel centres at integers).

        Returns:
            ``MaskPrediction`` with M = 3 or 1: masks (M, H, W) bool, iou_scores (M,),
            low_res_logits (M, 4h, 4w) clamped to +-32, object_score_logits; in window mode
            masks (M, h, w) of ``window`` (``best_in_frame(hw)`` places the best one).
        """
        if multimask is not None:
            multimask_output = multimask
        if embedding is None and self.windowed is not None:
            return self.windowed.predict(self, points=points, labels=labels, box=box,
                                         mask_input=mask_input,
                                         multimask_output=bool(multimask_output))
        emb = embedding if embedding is not None else self.embedding
        if emb is None:
            raise RuntimeError("no image: call set_image(image) first, or pass embedding=")
        if not isinstance(emb, ImageEmbedding):
            raise TypeError(f"embedding must be an ImageEmbedding, got {type(emb).__name__}")
        cfg = self.model.config
        grid = (cfg.hidden_dim, cfg.image_size // cfg.backbone_stride)
        if (emb.image_embed.shape[1], emb.image_embed.shape[-1]) != grid:
            raise ValueError(
                f"embedding of shape {tuple(emb.image_embed.shape)} was made by another model: "
                f"this one needs (1, {grid[0]}, {grid[1]}, {grid[1]}); encode the image again"
            )
        hw = emb.original_size
        low = 4 * grid[1]
        pts, lbl = check_points(points, labels, hw)
        bx = check_box(box, hw)
        mask = check_mask_input(mask_input, (low, low))
        if pts is None and bx is None and mask is None:
            raise ValueError(
                "no prompt: pass points (with labels), a box, or a mask_input (or several)"
            )

        coords, codes = [], []
        if bx is not None:  # box corners first, as Meta's predictor orders them
            coords.append(T.box_to_model_points(bx, hw, self.image_size))
            codes.append(np.array([T.BOX_TOP_LEFT_LABEL, T.BOX_BOTTOM_RIGHT_LABEL], np.int32))
        if pts is not None:
            coords.append(T.points_to_model(pts, hw, self.image_size))
            codes.append(lbl.astype(np.int32))

        dev = emb.device
        with torch.inference_mode(), self._autocast():
            point_coords = point_labels = None
            if coords:
                point_coords = torch.from_numpy(np.concatenate(coords))[None].to(dev)
                point_labels = torch.from_numpy(np.concatenate(codes))[None].to(dev)
            mask_t = None if mask is None else torch.from_numpy(mask)[None, None].to(dev)
            low_res, ious, obj = self._decode(emb, point_coords, point_labels, mask_t,
                                              bool(multimask_output))
            low_res = low_res.float()  # (1, M, 4h, 4w)
            cleaned = postprocess_logits(low_res, max_hole_area=self.max_hole_area,
                                         max_sprinkle_area=self.max_sprinkle_area)
            masks = T.logits_to_masks(cleaned[0], hw)  # (M, H, W) bool, tile by tile
            low_res = low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
            return MaskPrediction(
                masks=masks,
                iou_scores=ious[0].float().cpu().numpy(),
                low_res_logits=low_res[0].cpu().numpy(),
                object_score_logits=float(obj.reshape(-1)[0]),
            )

    # ------------------------------------------------------------------ internals
    def _cached_dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) dense positional encoding of the prompt encoder, computed once."""
        g = self.model.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        key = (g.data_ptr(), g._version, g.device, g.dtype)
        if self._dense_pe is None or key != self._dense_pe_key:
            self._dense_pe = self.model.dense_pe()
            self._key_pe = flat_tokens(self._dense_pe)
            self._dense_pe_key = key
        return self._dense_pe

    def _cached_key_pe(self) -> torch.Tensor:
        """(1, hw, C) the dense positional encoding in token layout, computed once."""
        self._cached_dense_pe()
        return self._key_pe

    def _decode(self, emb, point_coords, point_labels, mask_input, multimask_output):
        """Prompt encoder + mask decoder, as Meta's image predictor (no occlusion masking).

        Returns: low_res (1, M, 4h, 4w), ious (1, M), object score logits (1, 1).
        """
        if not self.fast_decoder or emb.decoder_cache is None:
            out = self.model.prompt_and_decode(
                emb.image_embed, emb.high_res_features, point_coords=point_coords,
                point_labels=point_labels, mask_input=mask_input,
                multimask_output=multimask_output)
            return out.masks, out.iou_predictions, out.object_score_logits
        points = None if point_coords is None else (point_coords, point_labels)
        sparse, dense = self.model.sam_prompt_encoder(points, mask_input, batch_size=1)
        out = self.model.sam_mask_decoder.decode_cached(
            emb.decoder_cache, sparse, None if mask_input is None else dense,
            multimask_output=multimask_output)
        return out.masks, out.iou_predictions, out.object_score_logits


def fast_decoder_supported(model) -> bool:
    decoder = getattr(model, "sam_mask_decoder", None)
    return isinstance(decoder, MaskDecoder) and decoder.supports_cache
