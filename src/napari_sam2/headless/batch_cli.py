"""Track many stacks on a Dask cluster (a local one by default), one task per file.

    napari-sam2 batch "data/*.tif" --prompts "{dir}/{stem}.csv" --output-dir tracked/
    napari-sam2 batch --table jobs.csv --scheduler tcp://10.0.0.5:8786

Each file is one task: its model is loaded once per worker, its labels are written under a
hidden name and renamed when complete, a failed file is reported with its error while the
others go on, and a rerun skips the files already done (docs/sessions.md, workflow 3).
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
from pathlib import Path

from napari_sam2.cli_options import device_name, non_negative_int, positive_int, variant_name
from napari_sam2.headless.track_cli import frame_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("inputs", nargs="*",
                        help="image files or glob patterns (quote them), e.g. 'data/*.tif'")
    parser.add_argument("--table", type=Path, default=None,
                        help="CSV with columns input, prompts[, output] (one file per row)")
    parser.add_argument("--prompts", default=None,
                        help="prompts of each input, as a pattern: {dir}, {stem}, {name} are "
                             "the input's folder, name without suffix, and name (e.g. "
                             "'{dir}/{stem}.csv', 'seeds/{stem}_t0.tif', 'saved/{stem}.zarr')")
    parser.add_argument("--kind", choices=("auto", "record", "csv", "seeds"), default="auto",
                        help="what the prompts are (auto: .csv a CSV, .json a record, labels "
                             "with a record a record, other labels seeds)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="outputs go to DIR/<stem>.zarr (a --table row may name its own)")
    parser.add_argument("--name", default="labels", help="label image name (default labels)")
    parser.add_argument("--seed-frame", type=non_negative_int, default=0)
    parser.add_argument("--axis", type=non_negative_int, default=0,
                        help="stack axis of the images (CSV and seeds)")
    parser.add_argument("--intensity", type=float, nargs=2, metavar=("LO", "HI"), default=None)
    parser.add_argument("--direction", choices=("forward", "backward", "both"), default=None)
    parser.add_argument("--start", type=non_negative_int, default=None)
    parser.add_argument("--range", type=frame_range, default=None, metavar="FIRST:LAST")
    parser.add_argument("--max-frames", type=non_negative_int, default=None)
    parser.add_argument("--stop-after-absent", type=positive_int, default=None)
    parser.add_argument("--model", type=variant_name, default=None,
                        help="variant (default: each record's; sam2.1_hiera_tiny otherwise)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo finished outputs and replace outputs of other runs")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="an existing Dask scheduler, e.g. tcp://host:8786 (default: a "
                              "LocalCluster on this machine)")
    cluster.add_argument("--workers", type=positive_int, default=None,
                         help="LocalCluster worker processes (default: one per GPU, or one per "
                              "CPU core)")
    cluster.add_argument("--threads", type=positive_int, default=1,
                         help="torch threads per task (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------- the job list
def _pattern(pattern: str, image: Path) -> str:
    return pattern.format(dir=str(image.parent), stem=_stem(image), name=image.name)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def jobs_from_args(args) -> list:
    """The ``Job``s of the command line (paths absolute: workers may run elsewhere)."""
    from napari_sam2.headless.batch import Job

    if bool(args.table) == bool(args.inputs):
        raise ValueError("give either input files / glob patterns or --table jobs.csv")
    rows = []
    if args.table is not None:
        try:
            with open(args.table, newline="", encoding="utf-8-sig") as fh:
                table = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"cannot read the table {args.table}: {exc}") from None
        if not table or not {"input", "prompts"} <= set(table[0]):
            raise ValueError(f"the table {args.table} needs a header with the columns input, "
                             "prompts and optionally output, and one row per file")
        base = args.table.parent
        for line, row in enumerate(table, start=2):
            if not (row.get("input") or "").strip() or not (row.get("prompts") or "").strip():
                raise ValueError(f"{args.table} line {line}: input and prompts are required")
            image = base / row["input"].strip()
            output = (row.get("output") or "").strip()
            rows.append((image, base / row["prompts"].strip(),
                         base / output if output else None))
    else:
        if args.prompts is None:
            raise ValueError("--prompts PATTERN is needed with input files (e.g. "
                             "'{dir}/{stem}.csv'), or use --table")
        images = []
        for item in args.inputs:
            found = sorted(glob.glob(os.path.expanduser(item)))
            if not found and not glob.has_magic(item):
                found = [item]  # a missing file: reported as that file's failure
            if not found:
                raise ValueError(f"no file matches {item!r}")
            images += found
        for image in dict.fromkeys(Path(p) for p in images):
            rows.append((image, Path(_pattern(args.prompts, image)), None))
    jobs = []
    for image, prompts, output in rows:
        if output is None:
            if args.output_dir is None:
                raise ValueError(f"no output for {image}: give --output-dir DIR (or an output "
                                 "column in the table)")
            output = args.output_dir / f"{_stem(image)}.zarr"
        jobs.append(Job(str(image.resolve()), str(prompts.resolve()), str(output.resolve()),
                        args.kind))
    outputs = [j.output for j in jobs]
    twice = sorted({o for o in outputs if outputs.count(o) > 1})
    if twice:
        raise ValueError(f"several inputs would write the same output {twice[0]}: give them "
                         "their own outputs (inputs with the same name in different folders: "
                         "use a --table)")
    return jobs


def settings_from_args(args):
    from napari_sam2.headless.batch import Settings

    propagation = dict(direction=args.direction, start=args.start, range=args.range,
                       max_frames=args.max_frames, stop_after_absent=args.stop_after_absent)
    return Settings(model=args.model, checkpoint=str(args.checkpoint.resolve())
                    if args.checkpoint else None, device=args.device, propagation=propagation,
                    seed_frame=args.seed_frame, axis=args.axis,
                    intensity=tuple(args.intensity) if args.intensity else None,
                    name=args.name, overwrite=args.overwrite, threads=args.threads)


# ---------------------------------------------------------------------- the cluster
def local_cluster_size(device: str) -> int:
    """Workers of a LocalCluster: one per GPU for CUDA, else one per CPU core."""
    if device.startswith("cuda") or device == "auto":
        try:
            import torch

            if torch.cuda.is_available():
                return 1 if ":" in device else max(1, torch.cuda.device_count())
        except ImportError:
            pass
    return max(1, os.cpu_count() or 1)


def run_batch(jobs, settings, *, scheduler=None, workers=None, progress=True,
              say=lambda text: None) -> list[dict]:
    """Run ``jobs`` on a cluster; the result of every job, in job order."""
    import logging

    from distributed import Client, LocalCluster

    from napari_sam2.headless.batch import run_job

    cluster = None
    if scheduler is None:
        n = workers or min(local_cluster_size(settings.device), len(jobs))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               silence_logs=logging.ERROR, dashboard_address=":0")
    try:
        with Client(scheduler or cluster) as client:
            say(f"Dask dashboard: {client.dashboard_link}")
            futures = [client.submit(run_job, job, settings, key=f"napari-sam2-{i}",
                                     pure=False) for i, job in enumerate(jobs)]
            if progress:
                from distributed import progress as dask_progress

                dask_progress(futures)
                print(file=sys.stderr)
            results = []
            for job, future in zip(jobs, futures):
                try:
                    results.append(future.result())
                except Exception as exc:  # noqa: BLE001 - a worker died: that file failed
                    from napari_sam2.errors import one_line

                    results.append({"image": job.image, "output": job.output,
                                    "status": "failed", "frames": 0, "seconds": 0.0,
                                    "error": f"the task failed on its worker: "
                                             f"{type(exc).__name__}: {one_line(exc)}"})
            return results
    finally:
        if cluster is not None:
            cluster.close()


def summary(results: list[dict]) -> tuple[str, int]:
    """(text, exit status): counts, then one line per failed file; 1 if any failed."""
    count = {s: sum(r["status"] == s for r in results) for s in ("done", "skipped", "failed")}
    lines = [f"{count['done']} done, {count['skipped']} skipped (already complete), "
             f"{count['failed']} failed, of {len(results)} files"]
    lines += [f"failed: {r['image']}: {r['error']}" for r in results if r["status"] == "failed"]
    return "\n".join(lines), 1 if count["failed"] else 0


def run(args) -> int:
    jobs = jobs_from_args(args)
    settings = settings_from_args(args)

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    results = run_batch(jobs, settings, scheduler=args.scheduler, workers=args.workers,
                        progress=not args.no_progress, say=say)
    text, status = summary(results)
    print(text)
    return status
