"""Meta's SAM 2 code as an in-run baseline for the benchmarks (never a dependency of the package).

Timings taken on a shared machine move with its load; the only comparison that holds is the
one made in the same run, on the same input, interleaved. This module builds Meta's model
from a local copy of its code, given by path, so that ``bench_image.py`` and
``bench_tracking.py`` can time it next to ours with ``--meta-path DIR``.

Getting a local copy (the PyPI ``sam2`` 1.1.0 sdist is Meta's code; nothing is installed from
it, it is only put on ``sys.path``)::

    .venv/bin/pip download --no-deps sam2==1.1.0 -d /tmp/meta && tar xzf /tmp/meta/sam2-1.1.0.tar.gz -C /tmp/meta
    .venv/bin/pip install hydra-core iopath      # what Meta's model builder imports
    .venv/bin/python benchmarks/bench_image.py --variants tiny --meta-path /tmp/meta/sam2-1.1.0

A git checkout of https://github.com/facebookresearch/sam2 works the same way. Meta's image
predictor imports torchvision; we do not, so the image baseline calls the model's own
``forward_image`` and decoder the way ``SAM2ImagePredictor`` does (see ``MetaImage``). The
video baseline is Meta's ``SAM2VideoPredictor`` itself, reading a JPEG folder (the only input
it takes) written once from the same frames. Weights are Meta's random initialisation: speed
does not depend on their values.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["meta_config_name", "import_meta", "MetaImage", "MetaVideo"]

_SIZE_SUFFIX = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


def meta_config_name(variant: str) -> str:
    """Our variant name -> Meta's hydra config name, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``."""
    for version in ("sam2.1", "sam2"):
        prefix = f"{version}_hiera_"
        if variant.startswith(prefix) and variant[len(prefix):] in _SIZE_SUFFIX:
            size = _SIZE_SUFFIX[variant[len(prefix):]]
            return f"configs/{version}/{version}_hiera_{size}.yaml"
    raise ValueError(f"no Meta config for variant {variant!r}: the Meta baseline covers the 8 "
                     "official variants (sam2_hiera_* and sam2.1_hiera_*)")


def import_meta(path: str):
    """Put Meta's code at ``path`` on ``sys.path`` and return its ``sam2.build_sam`` module."""
    if not os.path.isfile(os.path.join(path, "sam2", "build_sam.py")):
        raise SystemExit(f"--meta-path {path!r} does not hold Meta's code: expected "
                         f"{os.path.join(path, 'sam2', 'build_sam.py')} (see "
                         "benchmarks/meta_baseline.py for how to get a copy)")
    sys.path.insert(0, os.path.abspath(path))
    try:
        import sam2.build_sam as build_sam
    except ModuleNotFoundError as err:
        raise SystemExit(f"Meta's code at {path} needs {err.name!r}: "
                         f".venv/bin/pip install hydra-core iopath") from None
    return build_sam


class MetaImage:
    """Meta's model driven as ``SAM2ImagePredictor`` drives it (without its torchvision
    transforms: the input tensor is given already normalised).

    ``encode(x)`` = ``set_image`` after the transform: ``forward_image``, the backbone-feature
    preparation, ``no_mem_embed`` and the reshaping into the per-level feature maps.
    ``click(point_xy, orig_hw)`` = ``predict`` for one positive point with multimask output:
    prompt encoder, mask decoder, upsampling to the image size, threshold, numpy.
    """

    def __init__(self, build_sam, variant: str, device: str = "cpu"):
        self.model = build_sam.build_sam2(meta_config_name(variant), None, device=device)
        self.model.eval()
        s = self.model.image_size
        self._feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.features = None

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> None:
        """x: (1, 3, S, S) float32 normalised."""
        m = self.model
        out = m.forward_image(x)
        _, vision_feats, _, _ = m._prepare_backbone_features(out)
        if m.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + m.no_mem_embed
        feats = [f.permute(1, 2, 0).view(1, -1, *size)
                 for f, size in zip(vision_feats[::-1], self._feat_sizes[::-1])][::-1]
        self.features = {"image_embed": feats[-1], "high_res_feats": feats[:-1]}

    @torch.inference_mode()
    def click(self, point_xy: tuple[float, float], orig_hw: tuple[int, int]) -> np.ndarray:
        m = self.model
        h, w = orig_hw
        s = m.image_size
        coords = torch.tensor([[[point_xy[0] / w * s, point_xy[1] / h * s]]], dtype=torch.float32)
        labels = torch.ones(1, 1, dtype=torch.int32)
        sparse, dense = m.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, ious, _, _ = m.sam_mask_decoder(
            image_embeddings=self.features["image_embed"],
            image_pe=m.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=True, repeat_image=False,
            high_res_features=self.features["high_res_feats"])
        masks = F.interpolate(low_res, (h, w), mode="bilinear", align_corners=False)
        return (masks > 0).cpu().numpy(), ious.cpu().numpy()


class MetaVideo:
    """Meta's ``SAM2VideoPredictor`` on frames given as arrays (written once as JPEGs)."""

    def __init__(self, build_sam, variant: str, device: str = "cpu", **build_options):
        """``build_options`` go to Meta's ``build_sam2_video_predictor`` (e.g.
        ``vos_optimized=True``: its torch.compile of every part, CUDA only)."""
        self.predictor = build_sam.build_sam2_video_predictor(meta_config_name(variant), None,
                                                              device=device, **build_options)
        self._dir = tempfile.TemporaryDirectory(prefix="meta_frames_")

    def write_frames(self, frames) -> str:
        """(T, H, W) or (T, H, W, 3) uint8 -> a JPEG folder Meta's ``init_state`` reads."""
        from PIL import Image

        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=-1)
            Image.fromarray(frame.astype(np.uint8)).save(
                os.path.join(self._dir.name, f"{i:05d}.jpg"), quality=95)
        return self._dir.name

    def propagate(self, frames, clicks_rc):
        """Click each (row, col) of ``clicks_rc`` on frame 0 as its own object and propagate
        forward: a generator of Meta's per-frame outputs (its methods run in inference mode)."""
        p = self.predictor
        state = p.init_state(self.write_frames(frames))
        for k, (r, c) in enumerate(clicks_rc):
            p.add_new_points_or_box(state, frame_idx=0, obj_id=k + 1,
                                    points=np.array([[c, r]], np.float32),
                                    labels=np.array([1], np.int32))
        yield from p.propagate_in_video(state)
