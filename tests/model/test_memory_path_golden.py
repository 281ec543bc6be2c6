"""The memory path (encode_memory, memory tokens, condition_on_memory, tracked SAM heads)
reproduces Meta's video predictor on frames 0 -> 1 of its golden run.

Fixture: tests/data/golden_memory_path.npz (tests/data/make_memory_fixture.py). Meta stores
memories in bfloat16; we round ours the same way before attending to them.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference_weights import reference_model

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def video_input(frame: np.ndarray) -> torch.Tensor:
    """(1024, 1024, 3) uint8 -> (1, 3, 1024, 1024) as Meta's video loader (float64 /255)."""
    x = ((frame / 255.0).astype(np.float32) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def rel(ours: torch.Tensor, ref: np.ndarray, scale: float | None = None) -> float:
    ref = np.asarray(ref, dtype=np.float32)
    return float(np.abs(ours.numpy() - ref).max() / (scale or np.abs(ref).max()))


@pytest.fixture(scope="module")
def run(data_dir):
    g = dict(np.load(data_dir / "golden_memory_path.npz"))
    model = reference_model("sam2.1_hiera_tiny")
    out = {"g": g, "model": model}
    with torch.inference_mode():
        f0 = model.encode_image(video_input(g["frames_uint8"][0]))
        f1 = model.encode_image(video_input(g["frames_uint8"][1]))
        high0 = F.interpolate(torch.from_numpy(g["lowres0"])[None, None], size=(1024, 1024),
                              mode="bilinear", align_corners=False)
        # a clicked frame: memory from the binarised mask (is_mask_from_pts)
        mem0, pos0 = model.encode_memory(f0.vision_features, high0,
                                         torch.tensor([[float(g["objscore0"])]]),
                                         is_mask_from_pts=True)
        sm, sp = model.spatial_memory_tokens(mem0.to(torch.bfloat16), pos0, t_pos=0)
        ptr0 = torch.from_numpy(g["objptr0"]).view(1, 1, -1)
        # pointer of frame 0 seen from frame 1: distance 1, 8-frame video -> max 7
        pt, pp = model.obj_ptr_tokens(ptr0, torch.tensor([1]), max_abs_pos=7)
        cond = model.condition_on_memory(f1.vision_features, f1.vision_pos_enc,
                                         torch.cat([sm, pt]), torch.cat([sp, pp]),
                                         num_obj_ptr_tokens=pt.shape[0])
        heads = model.run_sam_heads(cond, high_res_features=f1.high_res_features,
                                    multimask_output=model.use_multimask(
                                        is_init_cond_frame=False, num_points=0))
        mem1, _ = model.encode_memory(f1.vision_features, heads.high_res_masks,
                                      heads.object_score_logits, is_mask_from_pts=False)
    out.update(mem0=mem0, pos0=pos0, heads=heads, mem1=mem1)
    return out


def test_memory_of_the_clicked_frame(run):
    g, ch = run["g"], run["g"]["mem_channels"]
    ours = run["mem0"][:, ch].to(torch.bfloat16).float()
    assert rel(ours, g["maskmem0"], g["maskmem0_max_abs"]) < 5e-3  # one bf16 step is ~2.6e-3
    assert rel(run["pos0"][:, ch].float(), g["maskmem_pos_enc"]) < 1e-6


def test_tracked_frame_outputs(run):
    g, heads = run["g"], run["heads"]
    assert rel(heads.low_res_masks[0, 0], g["lowres1"]) < 1e-4
    assert rel(heads.obj_ptr[0], g["objptr1"]) < 1e-4
    assert abs(heads.object_score_logits.item() - float(g["objscore1"])) < 1e-4
    ours_mask = heads.low_res_masks[0, 0].numpy() > 0
    assert (ours_mask != (g["lowres1"] > 0)).mean() < 1e-4


def test_memory_of_the_tracked_frame(run):
    g, ch = run["g"], run["g"]["mem_channels"]
    ours = run["mem1"][:, ch].to(torch.bfloat16).float()
    assert rel(ours, g["maskmem1"], g["maskmem1_max_abs"]) < 5e-3
