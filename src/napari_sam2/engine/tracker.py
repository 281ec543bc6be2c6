"""The model steps of video tracking, composed from ``Sam2Model``'s per-frame operations.

``Tracker`` knows how to turn a frame's features plus an object's memory bank into an output,
following Meta's Dec-2024 ``SAM2Base.track_step``: initial prompted frames use the features
plus ``no_mem_embed``; every other frame is conditioned on its memories (see ``memory.py``) and
decoded with multimask output and the best-IoU pick; mask prompts are taken as the output
directly. Several objects on one frame whose memory banks have the same size run in one batch
through memory attention and the decoder (objects stay independent: each has its own memory).

No per-video state lives here: the session owns the tracks and the caches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from napari_sam2.engine.feature_cache import FrameFeatures
from napari_sam2.engine.memory import MemoryPlan, plan_from_config, pointer_max_distance
from napari_sam2.engine.object_track import FrameOutput, ObjectTrack
from napari_sam2.model.memory_attention import MemoryAttentionStart

LOW_RES_CLAMP = 32.0  # previous logits fed back as a mask prompt are clamped (Meta)
TRACKED_LOGITS_DTYPE = torch.float16  # storage of tracked frames' low-res logits

MemoryGetter = Callable[[ObjectTrack, int], torch.Tensor]


def memory_tokens(model, plan: MemoryPlan, num_frames: int,
                  spatial_of: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
                  pointer_of: Callable[[int], torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The memory that ``plan`` selects, as tokens for ``Sam2Model.condition_on_memory``.

    Shared by inference (``Tracker``) and training (``training/tracking_loop.py``), so both
    turn a plan into temporal encodings the same way.

    Args:
        model: a ``Sam2Model``.
        plan: the selection (``memory.plan_from_config``).
        num_frames: length of the stack; pointer distances are normalised by
            ``pointer_max_distance(num_frames, max_obj_ptrs_in_encoder)``.
        spatial_of: frame -> (maskmem_features (B, Cm, h, w), maskmem_pos_enc (B or 1, Cm,
            h, w)).
        pointer_of: frame -> obj_ptr (B, C).

    Returns:
        memory (M, B, Cm), memory_pos (M, B, Cm): spatial tokens in plan order, then the
        pointer tokens; and the pointer-token count.
    """
    feats, pos = [], []
    for t_pos, t in plan.spatial:
        f, p = model.spatial_memory_tokens(*spatial_of(t), t_pos)
        feats.append(f)
        pos.append(p)
    n_ptr = 0
    if plan.pointers:
        ptrs = torch.stack([pointer_of(t) for _, t in plan.pointers])  # (P, B, C)
        dist = torch.tensor([float(d) for d, _ in plan.pointers], device=ptrs.device)
        max_abs = pointer_max_distance(num_frames, model.config.max_obj_ptrs_in_encoder)
        f, p = model.obj_ptr_tokens(ptrs, dist, max_abs)
        feats.append(f)
        pos.append(p)
        n_ptr = f.shape[0]
    return torch.cat(feats), torch.cat(pos), n_ptr


class Tracker:
    """Per-frame tracking computations over a ``Sam2Model`` (in eval mode)."""

    def __init__(self, model) -> None:
        self.model = model
        self.cfg = model.config
        self.image_size = int(self.cfg.image_size)
        self.device = next(model.parameters()).device
        self._vision_pos: torch.Tensor | None = None  # (1, C, h, w), the same for every frame
        self._memory_pos: torch.Tensor | None = None  # (1, Cm, h, w), likewise

    # ------------------------------------------------------------------ features
    def encode(self, x: torch.Tensor) -> FrameFeatures:
        """(1, 3, S, S) model input -> ``FrameFeatures`` (batch 1, so results never depend on
        what else is encoded)."""
        feats = self.model.encode_image(x)
        if self._vision_pos is None:
            self._vision_pos = feats.vision_pos_enc[:1].contiguous()
        return FrameFeatures(feats.vision_features.contiguous(),
                             tuple(t.contiguous() for t in feats.high_res_features),
                             self._vision_pos)

    # ------------------------------------------------------------------ memory
    def plan(self, track: ObjectTrack, frame: int, reverse: bool, num_frames: int) -> MemoryPlan:
        """What ``frame`` of ``track`` attends to (``memory.plan_from_config``)."""
        return plan_from_config(self.cfg, frame, track.cond.keys(), track.non_cond.keys(),
                                num_frames=num_frames, reverse=reverse)

    def encode_memory(self, feats: FrameFeatures, out: FrameOutput) -> torch.Tensor:
        """Memory features (1, Cm, h, w) bfloat16 of one output, from its stored logits."""
        S = self.image_size
        high = F.interpolate(out.low_res.float(), size=(S, S), mode="bilinear",
                             align_corners=False)
        mem, _ = self.model.encode_memory(feats.vision, high, out.score,
                                          is_mask_from_pts=out.from_prompt)
        return mem.to(torch.bfloat16)

    @property
    def memory_pos(self) -> torch.Tensor:
        """(1, Cm, h, w) sine position encoding of memories (one for every frame)."""
        if self._memory_pos is None:
            h = self.cfg.feature_size
            probe = torch.zeros(1, self.cfg.mem_dim, h, h, device=self.device)
            self._memory_pos = self.model.memory_encoder.position_encoding(probe).contiguous()
        return self._memory_pos

    def _memory_tokens(self, plan: MemoryPlan, track: ObjectTrack, num_frames: int,
                       memory_of: MemoryGetter) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(M, 1, Cm) memory tokens and their PE for one object, plus the pointer-token count."""
        return memory_tokens(self.model, plan, num_frames,
                             lambda t: (memory_of(track, t), self.memory_pos),
                             lambda t: track.bank_output(t).obj_ptr.float())

    def frame_start(self, feats: FrameFeatures) -> MemoryAttentionStart:
        """The part of memory attention that is the same for every object on this frame
        (``Sam2Model.memory_attention_start``), for ``track(..., start=)``."""
        return self.model.memory_attention_start(feats.vision, feats.pos)

    def conditioned(self, feats: FrameFeatures, plans: Sequence[MemoryPlan],
                    tracks: Sequence[ObjectTrack], num_frames: int,
                    memory_of: MemoryGetter,
                    start: MemoryAttentionStart | None = None) -> torch.Tensor:
        """(B, C, h, w) memory-conditioned features, one row per (plan, track).

        All plans must have the same ``shape_key`` (same token counts). ``start``:
        ``frame_start(feats)``, shared by calls for several objects on the frame.
        """
        toks = [self._memory_tokens(p, t, num_frames, memory_of) for p, t in zip(plans, tracks)]
        if len({(m.shape[0], n) for m, _, n in toks}) != 1:
            raise AssertionError("objects batched together need equal memory sizes")
        memory = torch.cat([m for m, _, _ in toks], dim=1)  # (M, B, Cm)
        memory_pos = torch.cat([p for _, p, _ in toks], dim=1)
        B = len(toks)
        current = feats.vision.expand(B, -1, -1, -1)
        current_pos = feats.pos.expand(B, -1, -1, -1)
        return self.model.condition_on_memory(current, current_pos, memory, memory_pos,
                                              toks[0][2], start=start)

    # ------------------------------------------------------------------ steps
    def track(self, feats: FrameFeatures, plans: Sequence[MemoryPlan],
              tracks: Sequence[ObjectTrack], num_frames: int,
              memory_of: MemoryGetter, start: MemoryAttentionStart | None = None
              ) -> tuple[list[FrameOutput], torch.Tensor]:
        """A propagation step for objects without a prompt on this frame (one batch);
        ``start``: ``frame_start(feats)`` when several calls share the frame.

        Returns:
            one ``FrameOutput`` per track (memory already encoded), and the (B, 1, 4h, 4w)
            float32 logits before storage rounding (what the caller shows).
        """
        B = len(tracks)
        pix = self.conditioned(feats, plans, tracks, num_frames, memory_of, start)
        heads = self.model.run_sam_heads(
            pix, high_res_features=tuple(h.expand(B, -1, -1, -1) for h in feats.high_res),
            multimask_output=self.model.use_multimask(is_init_cond_frame=False, num_points=0))
        outs = []
        for i in range(B):
            out = FrameOutput(
                low_res=heads.low_res_masks[i:i + 1].to(TRACKED_LOGITS_DTYPE),
                obj_ptr=heads.obj_ptr[i:i + 1].float(),
                score=heads.object_score_logits[i:i + 1].float(),
                from_prompt=False)
            out.memory = self.encode_memory(feats, out)
            outs.append(out)
        return outs, heads.low_res_masks.float()

    def _prompt_features(self, feats: FrameFeatures, track: ObjectTrack, frame: int,
                         is_init: bool, reverse: bool, num_frames: int,
                         memory_of: MemoryGetter) -> torch.Tensor:
        if is_init:
            return self.model.add_no_mem_embed(feats.vision)
        plan = self.plan(track, frame, reverse, num_frames)
        return self.conditioned(feats, [plan], [track], num_frames, memory_of)

    def points(self, feats: FrameFeatures, track: ObjectTrack, frame: int, *,
               coords: np.ndarray, labels: np.ndarray, prev_logits: torch.Tensor | None,
               is_init: bool, reverse: bool, num_frames: int,
               memory_of: MemoryGetter) -> FrameOutput:
        """Output for point/box prompts (coords (N, 2) x, y model pixels, labels (N,))."""
        pix = self._prompt_features(feats, track, frame, is_init, reverse, num_frames,
                                    memory_of)
        mask_inputs = None
        if prev_logits is not None:
            mask_inputs = prev_logits.float().clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        pc = torch.from_numpy(np.ascontiguousarray(coords, np.float32))[None].to(self.device)
        pl = torch.from_numpy(np.ascontiguousarray(labels, np.int32))[None].to(self.device)
        heads = self.model.run_sam_heads(
            pix, point_coords=pc, point_labels=pl, mask_inputs=mask_inputs,
            high_res_features=feats.high_res,
            multimask_output=self.model.use_multimask(is_init_cond_frame=is_init,
                                                      num_points=int(len(labels))))
        return self._prompt_output(heads)

    def mask(self, feats: FrameFeatures, track: ObjectTrack, frame: int, *,
             mask: np.ndarray, is_init: bool, reverse: bool, num_frames: int,
             memory_of: MemoryGetter) -> FrameOutput:
        """Output for a mask prompt ((H, W) bool), resized to S x S as Meta does."""
        S = self.image_size
        m = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None].to(self.device)
        if m.shape[-2:] != (S, S):
            m = F.interpolate(m, size=(S, S), mode="bilinear", align_corners=False,
                              antialias=True)
            m = (m >= 0.5).float()
        if self.cfg.use_mask_input_as_output_without_sam:
            heads = self.model.mask_as_output(feats.vision, feats.high_res, m)
        else:
            pix = self._prompt_features(feats, track, frame, is_init, reverse, num_frames,
                                        memory_of)
            heads = self.model.run_sam_heads(
                pix, mask_inputs=m, high_res_features=feats.high_res,
                multimask_output=self.model.use_multimask(is_init_cond_frame=is_init,
                                                          num_points=0))
        return self._prompt_output(heads)

    @staticmethod
    def _prompt_output(heads) -> FrameOutput:
        return FrameOutput(low_res=heads.low_res_masks[:1].float().contiguous(),
                           obj_ptr=heads.obj_ptr[:1].float(),
                           score=heads.object_score_logits[:1].float(),
                           from_prompt=True)
