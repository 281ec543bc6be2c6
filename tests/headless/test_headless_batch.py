"""``napari-sam2 batch`` on a real ``dask.distributed.LocalCluster`` (2 worker processes):
outputs equal the single-process replay, a corrupt input is reported while the others go on,
a rerun after a killed run finishes only what was missing."""

from __future__ import annotations

import logging
import shutil

from pathlib import Path

import numpy as np
import pytest

from napari_sam2.cli import build_parser, main
from napari_sam2.engine.session import TrackingSession
from napari_sam2.engine.session_record import PropagateStep, SessionRecord
from napari_sam2.headless.batch import build_job_record, staging_path
from napari_sam2.headless.batch_cli import jobs_from_args, run_batch, settings_from_args, summary
from napari_sam2.headless.prompts import prompt_steps_from_csv
from napari_sam2.headless.runner import TrackOutput, track
from napari_sam2.io import read_labels_zarr
from napari_sam2.io.label_stream import run_state
from tests.headless.conftest import reference_labels, write_stack


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      silence_logs=logging.ERROR, dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    made = [write_stack(folder, f"s{i}", n_frames=5, seed=20 + i, n_cells=1 + i % 2)
            for i in range(4)]
    (folder / "broken.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 8)
    shutil.copy(made[0][1], folder / "broken.csv")
    return folder, made


def _argv(folder, out, cluster) -> list[str]:
    return ["batch", str(folder / "*.tif"), "--prompts", "{dir}/{stem}.csv",
            "--output-dir", str(out), "--model", "sam2_demo", "--device", "cpu",
            "--direction", "forward", "--scheduler", cluster.scheduler_address, "--no-progress"]


def _batch(folder, out, cluster) -> int:
    return main(_argv(folder, out, cluster))


def _args(folder, out, cluster):
    return build_parser()[0].parse_args(_argv(folder, out, cluster))


def _record(csv, image):
    return SessionRecord(steps=[*prompt_steps_from_csv(csv), PropagateStep(
        direction="forward")], model="sam2_demo", image_shape=image.shape)


@pytest.mark.slow  # ~65 s on 2 busy cores: each worker imports torch and loads the model
def test_batch_on_local_cluster(stacks, cluster, demo_model, tmp_path, capsys):
    folder, made = stacks
    out = tmp_path / "out"
    assert _batch(folder, out, cluster) == 1  # one file failed
    text = capsys.readouterr().out
    assert "4 done, 0 skipped (already complete), 1 failed, of 5 files" in text
    assert f"failed: {folder / 'broken.tif'}: cannot read" in text
    for tif, csv, image, _ in made:
        labels, _, _ = read_labels_zarr(out / f"{tif.stem}.zarr")
        np.testing.assert_array_equal(labels, reference_labels(_record(csv, image), image,
                                                                demo_model))
    assert not (out / "broken.zarr").exists()
    assert sorted(p.name for p in out.iterdir()) == [f"s{i}.zarr" for i in range(4)]

    # a killed run: s1's output missing, s2's left half-done under its staging name
    stamps = {p.name: (p / "zarr.json").stat().st_mtime_ns for p in out.iterdir()}
    shutil.rmtree(out / "s1.zarr")
    shutil.rmtree(out / "s2.zarr")
    tif, csv, image, _ = made[2]
    staging = staging_path(out / "s2.zarr")

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    args = _args(folder, out, cluster)
    jobs, settings = jobs_from_args(args), settings_from_args(args)
    job = next(j for j in jobs if j.image == str(tif.resolve()))
    record, view = build_job_record(job, settings)  # as the worker builds it
    with pytest.raises(KeyboardInterrupt):
        track(record, TrackingSession(demo_model, view), TrackOutput(staging),
              image=f"{view.dtype} {tif.resolve()}", progress=stop)
    assert run_state(staging)["complete"] is False
    results = run_batch(jobs, settings, scheduler=cluster.scheduler_address, progress=False)
    text, status = summary(results)
    assert status == 1
    assert "2 done, 2 skipped (already complete), 1 failed, of 5 files" in text
    frames = {Path(r["image"]).name: r["frames"] for r in results if r["status"] == "done"}
    assert frames == {"s1.tif": 5, "s2.tif": 3}  # s2 went on after its 2 finished frames
    for name in ("s0.zarr", "s3.zarr"):  # finished files were not touched
        assert (out / name / "zarr.json").stat().st_mtime_ns == stamps[name]
    assert not staging.exists()
    for tif, csv, image, _ in made:
        labels, _, _ = read_labels_zarr(out / f"{tif.stem}.zarr")
        np.testing.assert_array_equal(labels, reference_labels(_record(csv, image), image,
                                                                demo_model))
        assert run_state(out / f"{tif.stem}.zarr")["complete"] is True


def test_batch_skips_finished_and_reports_failed_files(stacks, cluster, demo_model, tmp_path,
                                                      capsys):
    """Fast: the workers never load a model (one file is complete, one is corrupt)."""
    folder, made = stacks
    only = tmp_path / "in"
    only.mkdir()
    for name in ("s3.tif", "s3.csv", "broken.tif", "broken.csv"):
        shutil.copy(folder / name, only / name)
    out = tmp_path / "out"
    args = _args(only, out, cluster)
    jobs, settings = jobs_from_args(args), settings_from_args(args)
    job = next(j for j in jobs if j.image.endswith("s3.tif"))
    record, view = build_job_record(job, settings)
    track(record, TrackingSession(demo_model, view), TrackOutput(out / "s3.zarr"),
          image=f"{view.dtype} {Path(job.image)}")
    stamp = (out / "s3.zarr" / "zarr.json").stat().st_mtime_ns
    assert _batch(only, out, cluster) == 1
    captured = capsys.readouterr()
    assert "0 done, 1 skipped (already complete), 1 failed, of 2 files" in captured.out
    assert f"failed: {only / 'broken.tif'}: cannot read" in captured.out
    assert "Dask dashboard: http" in captured.err
    assert (out / "s3.zarr" / "zarr.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.iterdir()) == ["s3.zarr"]


def test_batch_table_and_summary(stacks, tmp_path, capsys):
    folder, made = stacks
    table = tmp_path / "jobs.csv"
    table.write_text("input,prompts,output\n"
                     f"{made[0][0]},{made[0][1]},{tmp_path / 'a.zarr'}\n"
                     f"{made[0][0]},{made[0][1]},{tmp_path / 'a.zarr'}\n")
    assert main(["batch", "--table", str(table), "--no-progress"]) == 2
    assert "write the same output" in capsys.readouterr().err
    text, status = summary([
        {"image": "a.tif", "status": "done", "error": ""},
        {"image": "b.tif", "status": "failed", "error": "cannot read b.tif"},
        {"image": "c.tif", "status": "skipped", "error": ""}])
    assert status == 1 and text.splitlines() == [
        "1 done, 1 skipped (already complete), 1 failed, of 3 files",
        "failed: b.tif: cannot read b.tif"]
