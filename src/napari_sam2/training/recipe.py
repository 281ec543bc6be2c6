"""Multi-phase training recipes: one ``napari-sam2 train --recipe NAME`` runs every phase.

A recipe is a JSON file with a ``"phases"`` list; each phase has ``"args"``, the options of one
``napari-sam2 train`` run without ``--run-dir``, ``--init`` and ``--export`` (the recipe
supplies those). Each phase becomes a :class:`~napari_sam2.training.run_config.TrainRun`
(:func:`phase_run`) run by :func:`~napari_sam2.training.run.run_training`, the function the
``train`` command calls. Phase ``i`` trains in ``RUN_DIR/phase<i>``, starts from phase ``i - 1``'s
exported weights and exports ``RUN_DIR/phase<i>/weights.safetensors``. The last phase's
weights are then copied to ``--export`` with a record of all phases.

``NAME`` is a shipped variant whose record holds its recipe (``sam2_demo``: the three phases
that produced the shipped demo weights) or a path to a recipe file.

Stopping is safe at any point: run the same command again and finished phases are skipped, an
interrupted phase resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from napari_sam2._safe_write import atomic_file, json_text, write_text_atomic
from napari_sam2.errors import InvalidOptionError
from napari_sam2.training.run_config import TrainRun

__all__ = ["load_recipe", "phase_argv", "phase_run", "run_recipe"]

_SUPPLIED = ("--run-dir", "--init", "--export", "--resume", "--recipe")


def load_recipe(name: str | os.PathLike) -> tuple[str, list[dict]]:
    """(recipe name, phases) of a shipped variant's record or of a recipe JSON file."""
    path = Path(name)
    if not path.is_file():
        from napari_sam2.model.loading import shipped_weights_path

        try:
            path = shipped_weights_path(str(name)).with_suffix(".json")
        except ValueError:  # not a shipped variant
            path = None
        if path is None or not path.is_file():
            raise ValueError(f"recipe {name!r} is neither a file nor a shipped variant with a "
                             "record; pass a JSON file with a 'phases' list")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"recipe {path} cannot be read as JSON ({exc}); pass a JSON file with "
                         "a 'phases' list") from None
    phases = record.get("phases") if isinstance(record, dict) else None
    if not phases or not all(isinstance(p, dict) and isinstance(p.get("args"), list)
                             for p in phases):
        raise ValueError(f"{path}: a recipe needs a non-empty 'phases' list whose entries have "
                         "an 'args' list (the options of one 'napari-sam2 train' run)")
    for i, phase in enumerate(phases, 1):
        bad = [a for a in phase["args"] if str(a).split("=")[0] in _SUPPLIED]
        if bad:
            raise ValueError(f"{path}: phase {i} gives {bad}; the recipe sets these itself")
    return str(record.get("variant", path.stem)), phases


def phase_argv(phase: dict, run_dir: Path, init: Path | None, *, threads: int | None,
               device: str | None) -> list[str]:
    """The ``napari-sam2 train`` options of one phase (resuming if it has a checkpoint)."""
    argv = [str(a) for a in phase["args"]]
    argv += ["--run-dir", str(run_dir), "--export", str(run_dir / "weights.safetensors")]
    if init is not None:
        argv += ["--init", str(init)]
    if (run_dir / "checkpoint.pt").is_file():
        argv.append("--resume")
    if threads:
        argv += ["--threads", str(threads)]
    if device:
        argv += ["--device", device]
    return argv


def phase_run(phase: dict, run_dir: Path, init: Path | None, *, threads: int | None,
              device: str | None) -> TrainRun:
    """The :class:`TrainRun` of one phase (its ``args`` plus what the recipe supplies).

    Raises:
        InvalidOptionError: the phase's args hold an unknown option or a refused value.
    """
    return TrainRun.from_argv(phase_argv(phase, run_dir, init, threads=threads, device=device))


def run_recipe(name: str | os.PathLike, run_dir: str | os.PathLike, *,
               export: str | os.PathLike | None = None, threads: int | None = None,
               device: str | None = None, overwrite: bool = False) -> int:
    """Run (or continue) every phase of a recipe; returns 0 on success or the failing code.

    ``export`` is checked before the first phase starts: it may replace only an earlier result
    of the same recipe (its record names the recipe) unless ``overwrite``."""
    from napari_sam2.training.export import file_sha256
    from napari_sam2.training.run import run_training

    recipe_name, phases = load_recipe(name)
    root = Path(run_dir)
    for i, phase in enumerate(phases, 1):  # every phase's options, before phase 1 trains
        try:
            phase_run(phase, root / f"phase{i}", None, threads=threads, device=device)
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"recipe {name}, phase {i}: {exc}") from None
    if export is not None:
        _check_export(Path(export), str(name), overwrite=overwrite)
    init = None
    records = []
    for i, phase in enumerate(phases, 1):
        phase_dir = root / f"phase{i}"
        weights = phase_dir / "weights.safetensors"
        if weights.is_file():
            print(f"phase {i}/{len(phases)}: done before ({weights}), skipped", flush=True)
        else:
            print(f"phase {i}/{len(phases)}: {' '.join(map(str, phase['args']))}", flush=True)
            code = run_training(phase_run(phase, phase_dir, init, threads=threads,
                                          device=device))
            if code != 0:
                return code
        records.append(json.loads(weights.with_suffix(".json").read_text()))
        init = weights
    total_s = sum(float(r.get("train_seconds", 0.0)) for r in records)
    print(f"recipe {recipe_name}: {len(phases)} phases, {total_s / 60:.1f} training minutes; "
          f"weights {init}", flush=True)
    if export is not None:
        out = Path(export)
        record = {"variant": records[-1].get("variant"), "recipe": str(name),
                  "total_training_minutes": round(total_s / 60, 1),
                  "phases": [{"phase": i, **{k: r[k] for k in ("command", "seed", "steps",
                                                                "train_seconds") if k in r}}
                             for i, r in enumerate(records, 1)],
                  "file": out.name, "bytes": init.stat().st_size, "sha256": file_sha256(init)}
        # record first, then the weights, each swapped in whole (as export_weights does)
        write_text_atomic(out.with_suffix(".json"),
                          json_text(record, f"the record of {out}", indent=2) + "\n")
        atomic_file(out, lambda tmp: shutil.copyfile(init, tmp),
                    lambda tmp: _same_file_hash(tmp, record["sha256"]))
        print(f"exported {out}", flush=True)
    return 0


def _same_file_hash(path: Path, sha256: str) -> None:
    from napari_sam2.training.export import file_sha256

    if file_sha256(path) != sha256:
        raise OSError(f"the copy of the weights at {path} differs from the phase's file")


def _check_export(out: Path, recipe: str, *, overwrite: bool) -> None:
    """Refuse an ``--export`` that cannot be written, or that would replace weights this recipe
    did not write (unless ``overwrite``), before any phase trains."""
    from napari_sam2.training.outputs import prepare_output, record_of

    try:
        ours = json.loads(record_of(out).read_text()).get("recipe") == recipe
    except (OSError, ValueError, AttributeError):
        ours = False
    prepare_output(out, suffixes=(".safetensors",), overwrite=overwrite or ours,
                   option="--export")
