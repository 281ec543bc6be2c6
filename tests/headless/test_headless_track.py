"""``napari-sam2 track``: streamed output equals the single-process replay, resume after an
interrupt or a kill equals an uninterrupted run, every source of prompts, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from tests.headless.conftest import reference_labels, write_stack

from napari_sam2.cli import main
from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.session_record import PropagateStep, SessionRecord
from napari_sam2.headless.inputs import open_image, stack_of
from napari_sam2.headless.journal import Journal
from napari_sam2.headless.prompts import prompt_steps_from_csv, record_from_seeds
from napari_sam2.headless.runner import TrackOutput, track
from napari_sam2.io import read_labels_zarr
from napari_sam2.io.label_stream import run_state

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _csv_record(csv, image, *, start=None, direction="both"):
    return SessionRecord(steps=[*prompt_steps_from_csv(csv),
                                PropagateStep(start=start, direction=direction)],
                         model="sam2_demo", image_shape=image.shape)


class Interrupt(Exception):
    pass


def _stop_at(n):
    def progress(done, total):
        if done == n:
            raise Interrupt(f"stopped after {n} frames")
    return progress


@pytest.fixture(scope="module")
def long_stack(tmp_path_factory):
    """24 frames, prompts on frame 2: the forward pass reaches 21 frames beyond the start."""
    return write_stack(tmp_path_factory.mktemp("long"), "cells", n_frames=24, seed=3,
                       prompt_frame=2)


@pytest.fixture(scope="module")
def long_reference(long_stack, short_memory_model):
    tif, csv, image, _ = long_stack
    return reference_labels(_csv_record(csv, image), image, short_memory_model)


def _run(record, image_path, out, model, **kwargs):
    view = stack_of(open_image(image_path))
    session = TrackingSession(model, view)
    summary = track(record, session, TrackOutput(out), **kwargs)
    return summary, session


def test_streamed_run_drops_old_outputs_and_equals_replay(long_stack, long_reference,
                                                          short_memory_model, tmp_path):
    tif, csv, image, truth = long_stack
    record = _csv_record(csv, image)
    summary, session = _run(record, tif, tmp_path / "out.zarr", short_memory_model)
    labels, meta, _ = read_labels_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(labels, long_reference)
    assert summary["frames"] == 22 + 3  # 2..23 forward, then 2..0 backward
    assert set(np.unique(labels)) == {0, *(int(v) for v in np.unique(truth[2]) if v)}
    # the run ends on frame 0: only tracked outputs within 8 frames of it or of the start (2)
    # are left; the others (e.g. 11..14 from frame 20 of the forward pass on) were dropped
    kept = set(session.state.tracks[session.obj_ids[0]].non_cond)
    assert kept == set(range(11)) - {2}
    assert run_state(tmp_path / "out.zarr")["complete"] is True
    saved = meta.provenance["session_records"]["records"]
    assert saved == [record.to_dict()]  # the widget's key: reopening restores the session
    assert not Journal(tmp_path / "out.zarr").folder.exists()


@pytest.mark.parametrize("stop_after", [9, 23])  # in the forward pass; in the backward pass
def test_resume_after_interrupt_equals_uninterrupted(long_stack, long_reference,
                                                     short_memory_model, tmp_path, stop_after):
    tif, csv, image, _ = long_stack
    record = _csv_record(csv, image)
    out = tmp_path / "out.zarr"
    with pytest.raises(Interrupt):
        _run(record, tif, out, short_memory_model, progress=_stop_at(stop_after))
    assert run_state(out)["complete"] is False
    written, _, _ = read_labels_zarr(out)  # readable at once; the finished frames are there
    finished = list(range(2, 2 + min(stop_after, 22)))
    np.testing.assert_array_equal(written[finished], long_reference[finished])
    said = []
    summary, _ = _run(record, tif, out, short_memory_model, resume=True, say=said.append)
    labels, _, _ = read_labels_zarr(out)
    np.testing.assert_array_equal(labels, long_reference)
    assert summary["frames"] == 25 - stop_after  # only what was missing was computed
    assert summary["resumed_at"] == (2 + stop_after if stop_after < 22 else 1)
    assert any("resuming" in s for s in said)
    assert run_state(out)["complete"] is True
    assert not Journal(out).folder.exists()
    assert not [p for p in tmp_path.iterdir() if "scratch" in p.name]
    # a complete output is left alone by another --resume
    assert _run(record, tif, out, short_memory_model, resume=True)[0]["skipped"] is True


def test_resume_refuses_another_run(long_stack, short_memory_model, tmp_path):
    tif, csv, image, _ = long_stack
    out = tmp_path / "out.zarr"
    with pytest.raises(Interrupt):
        _run(_csv_record(csv, image), tif, out, short_memory_model, progress=_stop_at(3))
    other = _csv_record(csv, image, direction="forward")
    with pytest.raises(FileExistsError, match="other prompts, settings or input"):
        _run(other, tif, out, short_memory_model, resume=True)


def _track(*argv) -> int:
    return main(["track", *[str(a) for a in argv], "--model", "sam2_demo", "--device", "cpu",
                 "--no-progress"])


def test_cli_prompts_csv_and_record_round_trip(tmp_path, demo_model, capsys):
    tif, csv, image, _ = write_stack(tmp_path, "s", n_frames=6, seed=5)
    assert _track(tif, "--prompts", csv, "-o", tmp_path / "a.zarr", "--direction",
                  "forward") == 0
    labels, _, _ = read_labels_zarr(tmp_path / "a.zarr")
    record = _csv_record(csv, image, direction="forward")
    np.testing.assert_array_equal(labels, reference_labels(record, image, demo_model))
    # the output holds its record: replaying it (or the same record as .json) gives the same
    assert _track(tif, "--record", tmp_path / "a.zarr", "-o", tmp_path / "b.zarr") == 0
    (tmp_path / "r.json").write_text(record.to_json())
    assert _track(tif, "--record", tmp_path / "r.json", "-o", tmp_path / "c.zarr") == 0
    for name in ("b.zarr", "c.zarr"):
        np.testing.assert_array_equal(read_labels_zarr(tmp_path / name)[0], labels)


@pytest.mark.slow
def test_cli_compile_tracks_as_eager(tmp_path, demo_model):
    """``--compile`` (inductor's C++ code on the CPU: about a minute to build on 2 cores the
    first time) writes the labels of the eager run, up to pixels on a mask's edge."""
    tif, csv, image, _ = write_stack(tmp_path, "s", n_frames=5, seed=5)
    assert _track(tif, "--prompts", csv, "-o", tmp_path / "a.zarr", "--direction", "forward",
                  "--compile") == 0
    labels, _, _ = read_labels_zarr(tmp_path / "a.zarr")
    expected = reference_labels(_csv_record(csv, image, direction="forward"), image, demo_model)
    assert labels.shape == expected.shape and expected.any()
    assert np.mean(labels != expected) < 1e-4


def test_cli_seed_labels_become_objects(tmp_path, demo_model):
    tif, _, image, truth = write_stack(tmp_path, "s", n_frames=5, seed=7, n_cells=3)
    tifffile.imwrite(tmp_path / "seeds.tif", truth[1].astype(np.uint16))
    out = tmp_path / "out.zarr"
    assert _track(tif, "--seeds", tmp_path / "seeds.tif", "--seed-frame", 1, "-o", out) == 0
    labels, _, _ = read_labels_zarr(out)
    seeds = truth[1]
    assert set(np.unique(labels)) == set(np.unique(seeds))
    assert (labels[1][seeds > 0] == seeds[seeds > 0]).all()  # painted seeds are kept as they are
    record = record_from_seeds(seeds, 1, PropagateStep(direction="both"), model="sam2_demo")
    np.testing.assert_array_equal(labels, reference_labels(record, image, demo_model))


def test_cli_refusals(tmp_path, capsys):
    tif, csv, *_ = write_stack(tmp_path, "s", n_frames=3, seed=1)
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (["--prompts", csv, "-o", foreign, "--overwrite"], "Refusing to save labels"),
        (["--seeds", "auto", "--seed-frame", 9, "-o", tmp_path / "x.zarr"], "out of range"),
        (["--record", csv, "--direction", "forward", "-o", tmp_path / "x.zarr"],
         "apply to --prompts and --seeds"),
        (["--seeds", tif, "--seed-frame", 9, "-o", tmp_path / "x.zarr"], "out of range"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("obj_id,frame,row,col,label\n1,0,10,10,1\n1,0,ten,10,1\n")
    cases.append((["--prompts", bad, "-o", tmp_path / "x.zarr"], "line 3: row must be a number"))
    for argv, message in cases:
        assert _track(tif, *argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (foreign / "notes.txt").read_text() == "mine"
    assert _track(tif, "--prompts", csv, "-o", tmp_path / "ok.zarr") == 0
    assert _track(tif, "--prompts", csv, "-o", tmp_path / "ok.zarr") == 2
    assert "pass --resume" in capsys.readouterr().err


def _journal_frames(out: Path) -> int:
    return len(Journal(out).entries())


@pytest.mark.slow  # ~20 s on 2 busy cores (a fresh process imports torch)
def test_killed_track_process_then_resume(tmp_path, demo_model):
    """A real ``napari-sam2 track`` process killed (SIGKILL) mid-run keeps its finished frames;
    ``--resume`` finishes it, equal to an uninterrupted run."""
    tif, csv, image, _ = write_stack(tmp_path, "s", n_frames=14, seed=11)
    out = tmp_path / "out.zarr"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_sam2.cli", "track", str(tif), "--prompts", str(csv),
         "-o", str(out), "--model", "sam2_demo", "--device", "cpu", "--no-progress",
         "--direction", "forward"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _journal_frames(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    record = _csv_record(csv, image, direction="forward")
    expected = reference_labels(record, image, demo_model)
    written, _, _ = read_labels_zarr(out)
    done = max(f for _, f in Journal(out).entries())
    assert 3 <= done < 13
    np.testing.assert_array_equal(written[: done + 1], expected[: done + 1])
    assert run_state(out)["complete"] is False
    assert _track(tif, "--prompts", csv, "-o", out, "--direction", "forward", "--resume") == 0
    np.testing.assert_array_equal(read_labels_zarr(out)[0], expected)


@pytest.mark.slow  # ~25 s on 2 busy cores
def test_widget_like_record_resumed_equals_replay(long_stack, short_memory_model, tmp_path):
    """Corrections, a cleared frame, a deleted object, undo and a mask prompt before the last
    propagation: streamed and resumed mid-way, the labels are the widget's replay."""
    from napari_sam2.engine.session_record import (
        ClearStep,
        MaskStep,
        PointsStep,
        RemoveStep,
        UndoStep,
    )

    tif, csv, image, truth = long_stack
    ids = [int(v) for v in np.unique(truth[2]) if v]
    prompts = prompt_steps_from_csv(csv)
    ys, xs = np.nonzero(truth[12] == ids[0])
    painted = np.zeros(image.shape[1:], bool)
    painted[:8, :10] = True  # a hand-painted object 7 used as a prompt
    steps = [*prompts, PropagateStep(start=2, direction="forward", max_frames=12),
             PointsStep(12, ids[0], ((ys.mean(), xs.mean()), (0.0, 0.0)), (1, 0)),
             ClearStep(5, ids[1]), UndoStep(), RemoveStep(ids[1]),
             MaskStep(16, 7, painted),
             PropagateStep(start=12, direction="both")]
    record = SessionRecord(steps=steps, model="sam2_demo", image_shape=image.shape)
    expected = reference_labels(record, image, short_memory_model)
    out = tmp_path / "out.zarr"
    with pytest.raises(Interrupt):
        _run(record, tif, out, short_memory_model, progress=_stop_at(6))
    summary, _ = _run(record, tif, out, short_memory_model, resume=True)
    assert summary["resumed_at"] == 18
    np.testing.assert_array_equal(read_labels_zarr(out)[0], expected)
    assert set(np.unique(expected)) == {0, ids[0], 7}  # ids[1] was deleted
    assert (expected[16][painted] == 7).all()


def test_cli_seeds_auto_segments_the_seed_frame_then_tracks(tmp_path):
    """--seeds auto: segment everything on the seed frame, every label an object, tracked."""
    from napari_sam2.io import read_labels_zarr

    tif, _, image, truth = write_stack(tmp_path, "auto", n_frames=4, seed=2, n_cells=3)
    out = tmp_path / "auto.zarr"
    assert _track(tif, "--seeds", "auto", "--seed-frame", 0, "--direction", "forward",
                  "-o", out) == 0
    labels, *_ = read_labels_zarr(out)
    assert labels.shape == image.shape
    found = [v for v in np.unique(labels[0]) if v > 0]
    assert len(found) >= 2                       # most of the 3 cells found on the seed frame
    for v in found:                              # and each of them still there on the last frame
        assert (labels[-1] == v).sum() > 0
    assert (labels[-1] > 0).sum() > 0.5 * (truth[-1] > 0).sum()
