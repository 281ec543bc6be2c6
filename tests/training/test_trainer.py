"""One real optimisation step, gradient flow through memory, checkpoint resume, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2.training.datasets import SyntheticClips
from napari_sam2.training.tracking_loop import RolloutOptions, rollout
from napari_sam2.training.trainer import TrainConfig, Trainer, lr_factor


def _clips(size, n_frames, n_clips, seed=0):
    src = SyntheticClips(size, num_frames=n_frames, max_objects=3, volume_fraction=0.0)
    rng = np.random.default_rng(seed)
    return [src.sample(rng) for _ in range(n_clips)]


def _loss(model, clips, opts):
    torch.manual_seed(0)  # dropout in memory attention
    return rollout(model, clips, torch.Generator().manual_seed(0), opts)


def test_one_step_reduces_the_loss_and_trains_every_part(tiny_model):
    model = tiny_model.train()
    clips = _clips(64, 4, 2)
    # a mask prompt on one clip's objects, clicks/boxes on others, corrections, a 2nd cond frame
    opts = RolloutOptions(prompt_probs=(0.3, 0.4, 0.3), max_corrections=1, second_prompt_prob=1)
    before = _loss(model, clips, opts)
    assert before.num_predictions > 4
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    opt.zero_grad()
    before.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    def reached(prefix):
        return any(g is not None and g.abs().sum() > 0 for n, g in grads.items()
                   if n.startswith(prefix))
    for part in ("image_encoder.trunk", "image_encoder.neck", "sam_prompt_encoder",
                 "sam_mask_decoder", "memory_attention", "memory_encoder", "obj_ptr_proj",
                 "obj_ptr_tpos_proj", "maskmem_tpos_enc", "no_mem_embed"):
        assert reached(part), f"no gradient reaches {part}"
    # every weight of the memory path is trained, not just some
    for n, g in grads.items():
        if n.startswith(("memory_attention", "memory_encoder")):
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, n
    opt.step()
    after = _loss(model, clips, opts)
    assert after.loss.item() < before.loss.item()


def test_image_only_batch_and_bad_batches(tiny_model):
    model = tiny_model.train()
    clips = _clips(64, 1, 2)
    # clicks only: the loss and the first-click IoU are real numbers
    r = _loss(model, clips, RolloutOptions(prompt_probs=(0, 1, 0), max_corrections=2))
    assert torch.isfinite(r.loss) and r.num_predictions > 0
    assert 0 <= r.first_click_iou <= 1
    # boxes only: a finite loss, and no first-click IoU to report (NaN by contract)
    r = _loss(model, clips, RolloutOptions(prompt_probs=(0, 0, 1), max_corrections=2))
    assert torch.isfinite(r.loss) and r.num_predictions > 0
    assert np.isnan(r.first_click_iou)
    with pytest.raises(ValueError, match="same number of frames"):
        rollout(model, clips + _clips(64, 2, 1), torch.Generator(), RolloutOptions())
    with pytest.raises(ValueError, match="at least one clip"):
        rollout(model, [], torch.Generator(), RolloutOptions())


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, 0.0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 0.09, cfg) == pytest.approx(1.0)
    assert lr_factor(50, 0.5, cfg) == pytest.approx(0.55)
    assert lr_factor(100, 1.0, cfg) == pytest.approx(0.1)


def _trainer(model, run_dir):
    cfg = TrainConfig(steps=4, warmup_steps=1, image_batch=1, objects_per_image=2,
                      objects_per_clip=2, num_frames=3, video_start=0.5, video_prob=1.0,
                      max_corrections=1, seed=3)
    return Trainer(model, cfg, image_source=SyntheticClips(64, num_frames=1, max_objects=2),
                   video_source=SyntheticClips(64, num_frames=3, max_objects=2),
                   run_dir=run_dir)


def test_checkpoint_resume_continues_exactly(tiny_model, tmp_path):
    import copy

    twin = copy.deepcopy(tiny_model)
    a = _trainer(tiny_model, tmp_path / "a")
    a.train(max_steps=2)
    assert (tmp_path / "a" / "checkpoint.pt").is_file() and a.step == 2
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    b = _trainer(twin, tmp_path / "b")
    b.load_state(tmp_path / "a" / "checkpoint.pt")
    assert b.step == 2
    torch.manual_seed(1)
    ra = a.train_step()
    torch.manual_seed(1)
    rb = b.train_step()
    assert ra.kind == rb.kind == "video"  # the curriculum switched to video at half-way
    assert ra.loss == pytest.approx(rb.loss, rel=1e-5)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    with pytest.raises(ValueError, match="not a training checkpoint"):
        torch.save({"model": {}}, tmp_path / "plain.pt")
        b.load_state(tmp_path / "plain.pt")


def test_tied_decoder_attention_starts_as_similarity(tiny_model):
    from napari_sam2.training.init import tie_decoder_cross_attention

    att = tiny_model.sam_mask_decoder.transformer.final_attn_token_to_image
    q_before = att.q_proj.weight.clone()
    assert tie_decoder_cross_attention(tiny_model, 4.0) == 5  # 2 per block x 2 blocks + final
    assert torch.equal(att.k_proj.weight, att.q_proj.weight)
    assert torch.allclose(att.q_proj.weight, 4 * q_before)
    assert att.k_proj.weight.data_ptr() != att.q_proj.weight.data_ptr()  # still two parameters


def test_prompt_settings_are_checked_before_training():
    with pytest.raises(ValueError, match="image-box-share"):
        TrainConfig(image_prompt_probs=(0.0, -0.5, 1.5))
    with pytest.raises(ValueError, match="box_noise"):
        TrainConfig(box_noise=-0.1)


def test_memory_dropout_option_reaches_every_layer(tiny_model):
    clips = _clips(64, 1, 1)
    Trainer(tiny_model, TrainConfig(memory_dropout=0.0), image_source=clips)
    mods = list(tiny_model.memory_attention.layers.modules())
    assert all(m.p == 0 for m in mods if isinstance(m, torch.nn.Dropout))
    assert all(m.dropout_p == 0 for m in mods if hasattr(m, "dropout_p"))
    assert sum(isinstance(m, torch.nn.Dropout) for m in mods) >= 4
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tiny_model.memory_attention.set_dropout(1.0)


def test_train_cli_runs_resumes_and_exports(tmp_path, capsys):
    from napari_sam2.cli import main
    from napari_sam2.model.checkpoint import read_state_dict

    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run), "--steps", "2", "--image-size", "64",
            "--image-batch", "1", "--objects-per-image", "2", "--log-every", "1"]
    assert main(args + ["--export", str(tmp_path / "w.safetensors"), "--box-noise", "0",
                        "--image-box-share", "0.75", "--memory-dropout", "0"]) == 0
    assert "step 2/2" in capsys.readouterr().out
    recorded = torch.load(run / "checkpoint.pt", weights_only=False)["train_config"]
    assert recorded["box_noise"] == 0 and tuple(recorded["image_prompt_probs"]) == (0, 0.25, 0.75)
    assert recorded["memory_dropout"] == 0
    assert set(read_state_dict(tmp_path / "w.safetensors")) == \
        set(torch.load(run / "checkpoint.pt", weights_only=False)["model"])
    assert main(args) == 2  # the run dir holds a checkpoint: refuse without --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "3"]) == 0
    assert "resumed" in capsys.readouterr().out


def test_recipe_runs_its_phases_in_order_and_continues(tmp_path, capsys):
    from napari_sam2.cli import main
    from napari_sam2.model import load_model

    small = ["--image-size", "64", "--image-batch", "1", "--objects-per-image", "2"]
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"variant": "sam2_demo", "phases": [
        {"args": ["--steps", "2", "--seed", "1"] + small},
        {"args": ["--steps", "3", "--seed", "2", "--lr", "1e-4"] + small}]}))
    run, out = tmp_path / "run", tmp_path / "final.safetensors"
    argv = ["train", "--recipe", str(recipe), "--run-dir", str(run), "--export", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "phase 1/2" in printed and "phase 2/2" in printed and "step 3/3" in printed
    phase2 = json.loads((run / "phase2" / "weights.json").read_text())
    assert f"--init {run / 'phase1' / 'weights.safetensors'}" in phase2["command"]
    record = json.loads(out.with_suffix(".json").read_text())
    assert [p["steps"] for p in record["phases"]] == [2, 3]
    assert (out.read_bytes() == (run / "phase2" / "weights.safetensors").read_bytes())
    load_model("sam2_demo", out, device="cpu")  # the result loads as the variant
    assert main(argv) == 0  # run again: both phases are done and skipped
    assert capsys.readouterr().out.count("skipped") == 2


DOCUMENTED_RECIPES = Path(__file__).parents[2] / "docs" / "recipes"


@pytest.mark.parametrize("recipe", ["sam2_demo", DOCUMENTED_RECIPES / "sam2_demo_v1.json",
                                    DOCUMENTED_RECIPES / "sam2_demo_v2.json",
                                    DOCUMENTED_RECIPES / "sam2_demo_v3.json"],
                         ids=["shipped", "docs_v1", "docs_v2", "docs_v3"])
def test_shipped_recipe_and_bad_recipes(recipe, tmp_path):
    import argparse

    from napari_sam2.training import cli
    from napari_sam2.training.recipe import load_recipe, phase_argv

    name, phases = load_recipe(recipe)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    parsed = [parser.parse_args(phase_argv(p, tmp_path / f"p{i}", None, threads=None,
                                           device=None)) for i, p in enumerate(phases)]
    assert name == "sam2_demo" and len(parsed) in (3, 4)
    minutes = [a.stop_at_minutes or a.budget_minutes for a in parsed]
    assert sum(minutes[:3]) <= 120, minutes  # issue 5's 2-hour bound on 2 cores (v1-v3)
    assert [a.image_size for a in parsed[:3]] == [128, None, None]
    if len(parsed) == 4:  # the shipped v4: a fourth phase on the nuclei data (issue 22)
        assert minutes[3] <= 120 and parsed[3].nuclei_fraction == 0.5
        assert all(a.nuclei_fraction == 0 for a in parsed[:3])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"phases": [{"args": ["--run-dir", "x"]}]}))
    with pytest.raises(ValueError, match="sets these itself"):
        load_recipe(bad)
    bad.write_text(json.dumps({"phases": []}))
    with pytest.raises(ValueError, match="'phases' list"):
        load_recipe(bad)
    with pytest.raises(ValueError, match="neither a file nor a shipped variant"):
        load_recipe("no_such_recipe")
