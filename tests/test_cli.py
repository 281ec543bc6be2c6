"""The ``napari-sam2`` command line: every expected error is one line on stderr and a non-zero
exit status, found before any training, download or propagation starts; ``--debug`` shows the
traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

from napari_sam2.cli import main
from napari_sam2.data import make_cell_timelapse

SRC = Path(__file__).parents[1] / "src"


def _one_error_line(capsys, code, *fragments):
    """The command failed with exactly one non-empty stderr line containing ``fragments``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("napari-sam2") and ": error: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors exit
        return exc.code


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder with a file where a folder is expected, a text file named .pt and a tiny
    image + label pair."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a folder\n")
    (tmp_path / "fake.pt").write_text("hello, I am not a checkpoint\n")
    images, labels = make_cell_timelapse(n_frames=2, shape=(64, 64), n_cells=2, seed=1)
    tifffile.imwrite(tmp_path / "movie.tif", images)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    tifffile.imwrite(tmp_path / "small_labels.tif", labels[:, :32])
    tifffile.imwrite(tmp_path / "empty_labels.tif", labels * 0)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 this is not really a tiff")
    (tmp_path / "recipe.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    return tmp_path


TRAIN = ["train", "--run-dir", "run"]
TUNE = ["finetune", "--images", "movie.tif", "--labels", "labels.tif", "--output", "o.safetensors"]

BAD_INPUTS = {
    "threads -1": (TRAIN + ["--threads", "-1"], ["--threads", ">= 1", "-1"]),
    "threads 0": (TRAIN + ["--threads", "0"], ["--threads", ">= 1"]),
    "threads text": (TRAIN + ["--threads", "many"], ["--threads", "'many'"]),
    "steps negative": (TRAIN + ["--steps", "-5"], ["--steps", "-5"]),
    "steps zero": (TRAIN + ["--steps", "0"], ["--steps"]),
    "minutes zero": (TRAIN + ["--minutes", "0"], ["--minutes", "> 0"]),
    "minutes negative": (TRAIN + ["--minutes", "-2"], ["--minutes"]),
    "budget inf": (TRAIN + ["--budget-minutes", "inf"], ["--budget-minutes"]),
    "stop-at negative": (TRAIN + ["--stop-at-minutes", "-1"], ["--stop-at-minutes"]),
    "lr nan": (TRAIN + ["--lr", "nan"], ["--lr", "'nan'"]),
    "lr zero": (TRAIN + ["--lr", "0"], ["--lr"]),
    "image batch 0": (TRAIN + ["--image-batch", "0"], ["--image-batch"]),
    "frames 0": (TRAIN + ["--num-frames", "0"], ["--num-frames"]),
    "warmup negative": (TRAIN + ["--warmup-steps", "-1"], ["--warmup-steps", ">= 0"]),
    "video-prob 1.5": (TRAIN + ["--video-prob", "1.5"], ["--video-prob", "from 0 to 1"]),
    "memory dropout 1": (TRAIN + ["--memory-dropout", "1"], ["--memory-dropout"]),
    "box noise negative": (TRAIN + ["--box-noise", "-0.1"], ["--box-noise"]),
    "checkpoint-every 0": (TRAIN + ["--checkpoint-every", "0"], ["--checkpoint-every"]),
    "log-every 0": (TRAIN + ["--log-every", "0"], ["--log-every"]),
    "seed negative": (TRAIN + ["--seed", "-3"], ["--seed"]),
    "image size 100": (TRAIN + ["--image-size", "100"], ["image_size 100", "divisible"]),
    "unknown variant": (TRAIN + ["--variant", "sam3"], ["'sam3'", "sam2_demo", "sam2.1_hiera"]),
    "unknown device": (TRAIN + ["--device", "tpu"], ["'tpu'", "auto, cpu, cuda, mps"]),
    "missing init": (TRAIN + ["--init", "nope.safetensors"], ["nope.safetensors",
                                                              "does not exist"]),
    "init not a checkpoint": (TRAIN + ["--init", "fake.pt", "--steps", "1"],
                              ["fake.pt is not a checkpoint"]),
    "run-dir under a file": (["train", "--run-dir", "notes.txt/run"],
                             ["notes.txt is a file, not a folder"]),
    "resume without checkpoint": (TRAIN + ["--resume"], ["--resume", "does not exist"]),
    "export under a file": (TRAIN + ["--export", "notes.txt/w.safetensors"],
                            ["--export folder", "notes.txt is a file"]),
    "export wrong suffix": (TRAIN + ["--export", "w.pt"], ["must end in .safetensors"]),
    "export is a folder": (TRAIN + ["--export", "."], ["is a folder"]),
    "unknown recipe": (TRAIN + ["--recipe", "nope"], ["'nope'", "neither a file"]),
    "recipe not JSON": (TRAIN + ["--recipe", "recipe.json"], ["recipe.json", "JSON"]),
    "recipe a list": (TRAIN + ["--recipe", "list.json"], ["list.json", "'phases' list"]),
    "epochs 0": (TUNE + ["--epochs", "0"], ["--epochs"]),
    "steps-per-epoch negative": (TUNE + ["--steps-per-epoch", "-1"], ["--steps-per-epoch"]),
    "val fraction 1": (TUNE + ["--val-fraction", "1"], ["--val-fraction"]),
    "finetune variant": (TUNE + ["--variant", "sam2_huge"], ["'sam2_huge'"]),
    "finetune device": (TUNE + ["--device", "gpu"], ["'gpu'"]),
    "output under a file": (TUNE[:-1] + ["notes.txt/sub/o.safetensors"], ["notes.txt is a file"]),
    "output wrong suffix": (TUNE[:-1] + ["notes.txt"], ["must end in .safetensors"]),
    "output is a folder": (TUNE[:-1] + ["dir.safetensors"], ["is a folder"]),
    "finetune run-dir under a file": (TUNE + ["--run-dir", "notes.txt/r"],
                                      ["--run-dir notes.txt/r", "notes.txt is a file"]),
    "missing images": (["finetune", "--images", "nope.tif", "--labels", "labels.tif",
                        "--output", "o.safetensors"], ["nope.tif", "does not exist"]),
    "broken tiff": (["finetune", "--images", "broken.tif", "--labels", "labels.tif",
                     "--output", "o.safetensors"], ["cannot read broken.tif", "no image data"]),
    "labels of another shape": (TUNE[:4] + ["small_labels.tif"] + TUNE[5:],
                                ["small_labels.tif", "shape"]),
    "labels without objects": (TUNE[:4] + ["empty_labels.tif"] + TUNE[5:], ["no object"]),
    "unequal pairs": (TUNE + ["--images", "movie.tif"], ["2 --images but 1 --labels"]),
    "missing checkpoint": (TUNE + ["--checkpoint", "nope.pt"], ["nope.pt", "does not exist"]),
    "checkpoint not a checkpoint": (TUNE + ["--checkpoint", "fake.pt"],
                                    ["fake.pt is not a checkpoint"]),
    "no weights for variant": (TUNE + ["--variant", "sam2_hiera_tiny", "--checkpoint", "x.pt"],
                               ["x.pt"]),
    "cache dir is a file": (["download", "sam2_hiera_tiny", "--cache-dir", "notes.txt"],
                            ["notes.txt is a file, not a folder"]),
    "cache under a file": (["download", "--list", "--cache-dir", "notes.txt/c"],
                           ["notes.txt is a file"]),
    "unknown download": (["download", "nonsense"], ["no download for nonsense"]),
    "download nothing": (["download"], ["give a variant name"]),
    "unknown command": (["bogus"], ["invalid choice"]),
    "no command": ([], ["required"]),
}


@pytest.mark.parametrize("argv, fragments", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_and_nothing_is_written(place, capsys, argv, fragments):
    (place / "dir.safetensors").mkdir()
    before = sorted(p.relative_to(place) for p in place.rglob("*"))
    code = _run(argv)
    _one_error_line(capsys, code, *fragments)
    assert code == 2
    after = sorted(p.relative_to(place) for p in place.rglob("*"))
    assert after in (before, sorted(before + [Path("run")])), after  # at most the empty run dir


def test_cuda_without_cuda_says_so(place, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _one_error_line(capsys, _run(TRAIN + ["--device", "cuda"]), "'cuda'", "CUDA")
    assert "available: cpu" in line
    assert not (place / "run").exists()  # nothing was built or written
    _one_error_line(capsys, _run(TUNE + ["--device", "cuda:1"]), "'cuda:1'")
    assert not (place / "o.safetensors").exists()


def test_existing_outputs_are_refused_before_training_and_left_intact(place, capsys):
    (place / "o.safetensors").write_bytes(b"someone's weights")
    _one_error_line(capsys, _run(TUNE), "o.safetensors exists", "--overwrite")
    (place / "w.json").write_text("{}")
    _one_error_line(capsys, _run(TRAIN + ["--export", "w.safetensors"]), "w.json exists")
    assert (place / "o.safetensors").read_bytes() == b"someone's weights"
    assert (place / "w.json").read_text() == "{}"
    assert not (place / "run" / "checkpoint.pt").exists()  # no step ran


def test_finetune_output_is_checked_before_any_training_step(place, capsys):
    """Valid data and weights, an output that cannot be written: the command must fail before
    the model is loaded, not after training (which would throw the weights away)."""
    import torch

    from napari_sam2.model import build_model
    from napari_sam2.training.export import export_weights

    torch.manual_seed(0)
    export_weights(build_model("sam2_demo"), place / "base.safetensors")
    argv = ["finetune", "--images", "movie.tif", "--labels", "labels.tif",
            "--checkpoint", "base.safetensors", "--epochs", "1", "--steps-per-epoch", "1",
            "--run-dir", "tune_run", "--output"]
    code = _run(argv + ["notes.txt/out/tuned.safetensors"])
    out = capsys.readouterr()
    assert code == 2 and "notes.txt is a file" in out.err
    assert "fine-tuning" not in out.out and "epoch" not in out.out  # no step, no validation
    assert not (place / "tune_run" / "log.jsonl").exists()
    # the same command with a writable output trains: the check is what stopped it
    assert _run(argv + ["out/tuned.safetensors"]) == 0
    assert "epoch 1" in capsys.readouterr().out
    assert (place / "out" / "tuned.safetensors").is_file()


def test_finetune_api_checks_output_before_loading_the_model(place):
    from napari_sam2.errors import InvalidOptionError, RefusedOverwriteError
    from napari_sam2.training.finetune import finetune

    images, labels = make_cell_timelapse(n_frames=2, shape=(64, 64), n_cells=2)
    missing = place / "no_such_model.safetensors"  # loading it would fail: never reached
    with pytest.raises(InvalidOptionError, match="notes.txt is a file"):
        finetune([(images, labels)], checkpoint=missing, output="notes.txt/x.safetensors")
    (place / "x.pt").write_bytes(b"keep")
    with pytest.raises(RefusedOverwriteError, match="x.pt exists"):
        finetune([(images, labels)], checkpoint=missing, output="x.pt")
    with pytest.raises(FileNotFoundError):  # with overwrite the next check is the model file
        finetune([(images, labels)], checkpoint=missing, output="x.pt", overwrite=True)
    assert (place / "x.pt").read_bytes() == b"keep"


def test_unexpected_errors_and_interrupts_are_one_line(place, capsys, monkeypatch):
    from napari_sam2.training import cli as train_cli

    def broken(args):
        return {}["a bug"]

    monkeypatch.setattr(train_cli, "run", broken)
    line = _one_error_line(capsys, _run(TRAIN), "unexpected KeyError", "--debug", "bug")
    assert line.startswith("napari-sam2 train: error:")
    with pytest.raises(KeyError):
        main(["--debug"] + TRAIN)
    with pytest.raises(KeyError):  # --debug also works after the subcommand
        main(TRAIN + ["--debug"])

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run", interrupted)
    assert main(TRAIN) == 130
    assert capsys.readouterr().err.strip() == "napari-sam2 train: interrupted"


def _subprocess(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "napari_sam2.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, fragment", [
    (TRAIN + ["--threads", "-1"], "argument --threads: must be a whole number >= 1, got -1"),
    (TRAIN + ["--variant", "nope"], "unknown variant 'nope'"),
    (TRAIN + ["--device", "cuda:99"], "'cuda:99'"),
    (TUNE + ["--checkpoint", "fake.pt"], "fake.pt is not a checkpoint"),
    (["finetune", "--images", "broken.tif", "--labels", "labels.tif", "--output", "o.pt"],
     "cannot read broken.tif"),
    (["download", "sam2_hiera_tiny", "--cache-dir", "notes.txt"], "notes.txt is a file"),
], ids=["threads", "variant", "device", "checkpoint", "damaged tiff", "cache"])
def test_real_process_prints_one_line_and_exits_non_zero(place, argv, fragment):
    result = _subprocess(argv, place)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_real_process_debug_shows_the_traceback(place):
    result = _subprocess(["--debug"] + TRAIN + ["--init", "fake.pt"], place)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CheckpointError" in result.stderr


def test_a_folder_given_as_checkpoint_is_bad_input(tmp_path, capsys):
    """A folder where the weights file goes: exit 2, one line that says to pick the file."""
    code = main(["demo", "--headless", "--checkpoint", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "is a folder: choose the weights file" in err[0]
