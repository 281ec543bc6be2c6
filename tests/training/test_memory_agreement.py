"""Training attends to exactly what inference attends to, for the same history.

The training rollout and a real ``TrackingSession`` (propagating forward from the same
conditioning frames) are run on the same clip; every memory plan each of them made is recorded
and compared frame by frame.
"""

import numpy as np
import pytest
import torch

from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.tracker import Tracker
from napari_sam2.training.datasets import SyntheticClips
from napari_sam2.training.tracking_loop import RolloutOptions, rollout

T = 20  # longer than max_obj_ptrs_in_encoder (16), so the pointer limit is exercised


def _inference_plans(model, clip, cond_frames, monkeypatch):
    """Plans the engine makes when propagating forward from mask prompts on ``cond_frames``."""
    seen = {}
    original = Tracker.plan

    def recording_plan(self, track, frame, reverse, num_frames):
        plan = original(self, track, frame, reverse, num_frames)
        seen[frame] = plan
        return plan

    monkeypatch.setattr(Tracker, "plan", recording_plan)
    masks = clip.masks[:, 0].numpy() > 0.5  # object 0 of the clip, (T, S, S)
    session = TrackingSession(model, (masks * 200).astype(np.uint8))
    for t in cond_frames:
        session.add_mask(t, 1, masks[t])
    results = list(session.propagate(0))
    assert [r.frame for r in results] == list(range(T))
    return seen


@pytest.mark.parametrize("seed,second_prompt_prob", [(0, 0.0), (1, 1.0), (2, 1.0)])
def test_rollout_and_session_select_the_same_memories(tiny_model, monkeypatch, seed,
                                                      second_prompt_prob):
    model = tiny_model.eval()
    src = SyntheticClips(64, num_frames=T, max_objects=1, volume_fraction=0.0)
    clip = src.sample(np.random.default_rng(seed))
    opts = RolloutOptions(prompt_probs=(1.0, 0.0, 0.0), max_corrections=0,
                          second_prompt_prob=second_prompt_prob)
    with torch.no_grad():
        result = rollout(model, [clip], torch.Generator().manual_seed(seed), opts)
    cond = result.cond_frames
    assert cond[0] == 0 and len(cond) == (1 if second_prompt_prob == 0 else 2)
    train = {p.frame: p for p in result.plans}
    assert sorted(train) == [t for t in range(1, T) if t not in cond]

    with torch.no_grad():
        infer = _inference_plans(model, clip, cond, monkeypatch)
    # the engine plans every frame it tracks: all but the conditioning frames
    assert sorted(infer) == sorted(train)
    for t in train:
        assert train[t] == infer[t], f"frame {t}: training {train[t]} vs inference {infer[t]}"
    # the history really got long: 16 pointers (1 conditioning + 15 recent) near the end
    assert max(len(p.pointers) for p in train.values()) == model.config.max_obj_ptrs_in_encoder
    assert max(len(p.spatial) for p in train.values()) == model.config.num_maskmem + len(cond) - 1
