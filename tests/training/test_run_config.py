"""TrainRun: the typed config of one training run, shared by `napari-sam2 train` and recipes."""

import argparse
import json
from dataclasses import fields, replace

import pytest

from napari_sam2.errors import InvalidOptionError
from napari_sam2.training import cli
from napari_sam2.training.recipe import load_recipe, phase_run
from napari_sam2.training.run_config import TrainRun


def test_cli_options_are_the_run_fields_with_the_same_defaults():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--run-dir", "r"])
    run = TrainRun.from_namespace(args)
    assert run == TrainRun(run_dir="r")
    dests = [a.dest for a in parser._actions if a.dest not in ("help", "recipe")]
    assert dests == [f.name for f in fields(TrainRun)]  # the option order is the field order


@pytest.mark.parametrize("recipe", ["sam2_demo", "docs/recipes/sam2_demo_v1.json"])
def test_command_rebuilds_the_run(recipe, tmp_path):
    """The record's command, run again, gives the same run (for every shipped phase)."""
    _, phases = load_recipe(recipe)
    for i, phase in enumerate(phases, 1):
        run = phase_run(phase, tmp_path / f"phase{i}", tmp_path / "w.safetensors", threads=2,
                        device="cpu")
        words = run.command().split()
        assert words[:2] == ["napari-sam2", "train"]
        assert TrainRun.from_argv(words[2:]) == run
    assert "--overwrite" in replace(run, overwrite=True).command().split()


def test_bad_phase_options_fail_before_the_first_phase_trains(tmp_path, capsys):
    from napari_sam2.cli import main

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"phases": [{"args": ["--steps", "1", "--image-size", "64"]},
                                             {"args": ["--steps", "-4"]}]}))
    with pytest.raises(InvalidOptionError, match="--steps: must be a whole number >= 1"):
        TrainRun.from_argv(["--run-dir", "r", "--steps", "-4"])
    with pytest.raises(InvalidOptionError, match="unrecognized arguments: --nope"):
        TrainRun.from_argv(["--run-dir", "r", "--nope"])
    code = main(["train", "--recipe", str(recipe), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "phase 2: argument --steps" in err and "\n" not in err
    assert not (tmp_path / "run" / "phase1").exists()  # phase 1 never started
