"""Track objects through a stack without napari, from a session record, a CSV or seed labels.

    napari-sam2 track movie.tif --record labels.zarr -o tracked.zarr
    napari-sam2 track movie.zarr --prompts clicks.csv --model sam2.1_hiera_tiny -o out.zarr
    napari-sam2 track movie.tif --seeds cellpose_t0.tif --seed-frame 0 -o out.zarr --resume

The image is read lazily (TIFF, OME-Zarr, zarr, .npy); the labels are written as OME-Zarr
(NGFF 0.5) frame by frame as they are computed, so memory stays flat and a killed run keeps
every finished frame; ``--resume`` goes on from where it stopped (docs/sessions.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_sam2.cli_options import device_name, non_negative_int, positive_int, variant_name

#: model used with --prompts / --seeds when --model is not given
DEFAULT_MODEL = "sam2.1_hiera_tiny"
#: bound of the image-feature cache of a headless run: a streamed propagation never goes back,
#: so a few frames' features (4 of an official 1024 model, ~128 of sam2_demo) are enough
FEATURE_CACHE_BYTES = 64 << 20


def frame_range(text: str) -> tuple[int, int]:
    """``FIRST:LAST`` (inclusive frame numbers, FIRST <= LAST)."""
    try:
        first, last = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be FIRST:LAST (two frame numbers, e.g. 0:99), got {text!r}") from None
    if not 0 <= first <= last:
        raise argparse.ArgumentTypeError(f"must have 0 <= FIRST <= LAST, got {text!r}")
    return first, last


def axis_position(text: str) -> tuple[int, int]:
    """``AXIS=INDEX`` (both whole numbers >= 0)."""
    try:
        axis, index = (int(v) for v in text.split("="))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be AXIS=INDEX (e.g. 1=0 for channel 0 of a (T, C, Y, X) stack), got "
            f"{text!r}") from None
    if axis < 0 or index < 0:
        raise argparse.ArgumentTypeError(f"must have AXIS, INDEX >= 0, got {text!r}")
    return axis, index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.epilog = ("Prompts CSV columns: obj_id, frame, then row, col[, label] for a click or "
                     "row0, col0, row1, col1 for a box (docs/sessions.md).")
    parser.add_argument("image", type=Path, help="the image stack (.tif, .zarr, .npy)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="labels to write: a .zarr folder, or an OME-Zarr image (its "
                             "labels/<name>)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--record", type=Path,
                        help="a session record: .json, or labels (.zarr/.tif) saved by the widget")
    source.add_argument("--prompts", type=Path, help="a points/boxes CSV")
    source.add_argument("--seeds",
                        help="label image of one frame (every label becomes an object), or "
                             "'auto'")
    parser.add_argument("--seed-frame", type=non_negative_int, default=0,
                        help="the frame the seed labels belong to (default 0)")
    parser.add_argument("--record-index", type=non_negative_int, default=None,
                        help="which record, when the file holds one per stack")
    parser.add_argument("--name", default="labels",
                        help="label image name (inside an OME-Zarr image; default labels)")
    geo = parser.add_argument_group("stack (with --prompts / --seeds; a record has its own)")
    geo.add_argument("--axis", type=non_negative_int, default=None,
                     help="the stack (time or z) axis of the image (default 0)")
    geo.add_argument("--position", type=axis_position, action="append", default=[],
                     metavar="AXIS=INDEX", help="fix another axis (repeatable; default 0)")
    geo.add_argument("--intensity", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                     help="intensity window mapped to 0..1 (default per frame)")
    run = parser.add_argument_group("propagation (with --prompts / --seeds)")
    run.add_argument("--direction", choices=("forward", "backward", "both"), default=None,
                     help="from the first prompted frame (default both)")
    run.add_argument("--start", type=non_negative_int, default=None,
                     help="frame to start from (default the first prompted frame)")
    run.add_argument("--range", type=frame_range, default=None, metavar="FIRST:LAST",
                     help="only frames FIRST..LAST (inclusive)")
    run.add_argument("--max-frames", type=non_negative_int, default=None,
                     help="at most this many frames beyond the start, per direction")
    run.add_argument("--stop-after-absent", type=positive_int, default=None,
                     help="stop an object after N frames in a row without it")
    model = parser.add_argument_group("model")
    model.add_argument("--model", type=variant_name, default=None,
                       help=f"variant (default: the record's; {DEFAULT_MODEL} otherwise)")
    model.add_argument("--checkpoint", type=Path, default=None, help="local weights file")
    model.add_argument("--device", type=device_name, default="auto",
                       help="auto, cpu, cuda, cuda:N or mps (default auto)")
    model.add_argument("--compile", action="store_true",
                       help="torch.compile the image encoder and memory attention (worth it "
                            "for long runs on a GPU; the first frames wait for the compiler)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with an unfinished run into --output (same inputs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output (only labels napari-sam2 wrote)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _propagation_options(args) -> dict:
    first, last = args.range if args.range else (None, None)
    return dict(start=args.start, direction=args.direction or "both", first=first, last=last,
                max_frames=args.max_frames, stop_after_absent=args.stop_after_absent)


def build_record(args, image, model=None):
    """The ``SessionRecord`` of the command line's prompts, and the stack view it runs on
    (``model``: the loaded model, needed by ``--seeds auto`` only)."""
    from napari_sam2.headless import prompts as P
    from napari_sam2.headless.inputs import stack_of

    if args.record is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("axis", "intensity", "direction", "start",
                                                        "range", "max_frames",
                                                        "stop_after_absent")
                 if getattr(args, n) is not None] + (["--position"] if args.position else [])
        if given:
            raise ValueError(f"{', '.join(given)} apply to --prompts and --seeds; a session "
                             "record replays its own stack and propagations")
        records = P.records_from_file(args.record)
        if args.record_index is None and len(records) > 1:
            raise ValueError(f"{args.record} holds {len(records)} session records (one per "
                             "stack): choose one with --record-index 0.."
                             f"{len(records) - 1}")
        index = args.record_index or 0
        if index >= len(records):
            raise ValueError(f"--record-index {index}: {args.record} holds {len(records)} "
                             "record(s)")
        record = records[index]
        if record.stack_axis is None:
            raise ValueError(f"the record in {args.record} was made on a 2-D image (one frame): "
                             "track replays stacks; reopen it in the widget instead")
        if record.image_shape and tuple(record.image_shape) != _non_channel(image, record.rgb):
            raise ValueError(f"the record was made on an image of shape {record.image_shape}, "
                             f"{args.image} has shape {tuple(image.shape)}: give the image the "
                             "record belongs to")
        view = stack_of(image, record.stack_axis or 0, record.other_axes, rgb=record.rgb)
        return record, view
    axis = args.axis or 0
    view = stack_of(image, axis, dict(args.position))
    geometry = dict(model=args.model or DEFAULT_MODEL, image_shape=_non_channel(image, view.rgb),
                    stack_axis=axis, other_axes=dict(view.ref.fixed),
                    intensity_range=args.intensity, rgb=view.rgb, image_name=args.image.name)
    step = P.propagation_step(**_propagation_options(args))
    if args.prompts is not None:
        return P.record_from_csv(args.prompts, step, **geometry), view
    if not 0 <= args.seed_frame < view.shape[0]:
        raise ValueError(f"--seed-frame {args.seed_frame} is out of range: the stack has frames "
                         f"0..{view.shape[0] - 1}")
    if args.seeds == "auto":
        plane = P.automatic_seeds(view[args.seed_frame], model, args.intensity)
    else:
        plane = P.read_seed_plane(Path(args.seeds), args.seed_frame, view.shape[1:3])
    return P.record_from_seeds(plane, args.seed_frame, step, source=str(args.seeds),
                               **geometry), view


def _non_channel(image, rgb: bool) -> tuple:
    shape = tuple(int(s) for s in image.shape)
    return shape[:-1] if rgb else shape


def _check_weights(record, args, say) -> None:
    """Say so when the record was made with other weights than those about to be used."""
    if not record.checkpoint_sha256:
        return
    from napari_sam2.model.download import sha256_of
    from napari_sam2.model.loading import SHIPPED_WEIGHTS, shipped_weights_path

    name = args.model or record.model
    path = args.checkpoint or (shipped_weights_path(name) if name in SHIPPED_WEIGHTS else None)
    if path is None:
        return  # a downloaded checkpoint: its own sha256 record is checked when it loads
    if sha256_of(Path(path)) != record.checkpoint_sha256:
        say(f"warning: {path} is not the checkpoint the record was made with (sha256 "
            f"{record.checkpoint_sha256[:12]}...): the labels may differ from the widget's")


def output_attributes(record, view) -> dict:
    """Scale and translation of the (T, H, W) output, from the record's per-axis values."""
    axes = [record.stack_axis or 0, len(record.image_shape) - 2, len(record.image_shape) - 1]
    out = {}
    for name in ("scale", "translate"):
        values = getattr(record, name)
        if values and len(values) == len(record.image_shape):
            out[name] = tuple(values[a] for a in axes)
    return out


def run(args) -> int:
    from napari_sam2.headless.inputs import open_image

    say = _stderr
    image = open_image(args.image)
    model = None
    if args.seeds == "auto":  # the model segments the seed frame before the record exists
        from napari_sam2.model import load_model

        model = load_model(args.model or DEFAULT_MODEL, args.checkpoint, device=args.device)
    record, view = build_record(args, image, model)
    from napari_sam2.headless.runner import TrackOutput

    output = TrackOutput(args.output, name=args.name, **output_attributes(record, view),
                         provenance={"image": str(args.image)})
    target = output.target
    if target.exists() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{target} exists: pass --resume to go on with an unfinished run "
                              "into it, or --overwrite to replace it")
    _check_weights(record, args, say)
    summary = track_one(record, view, output, model_name=args.model or record.model,
                        checkpoint=args.checkpoint, device=args.device, resume=args.resume,
                        image_id=f"{view.dtype} {args.image.resolve()}",
                        progress=not args.no_progress, say=say, model=model,
                        compile=args.compile)
    if summary["skipped"]:
        return 0
    say(f"wrote {summary['output']} ({summary['frames']} frames propagated)")
    return 0


def track_one(record, view, output, *, model_name, checkpoint=None, device="auto",
              resume=False, image_id="", progress=True, say=None,
              model=None, compile=False) -> dict:
    """Load the model (unless given), build the session and run ``headless.runner.track``
    (``compile``: ``model.compile.compile_parts`` first)."""
    from napari_sam2.engine.session import TrackingSession
    from napari_sam2.headless.runner import track

    if model is None:
        from napari_sam2.model import load_model

        model = load_model(model_name, checkpoint, device=device)
    if compile:
        from napari_sam2.model.compile import compile_parts

        compile_parts(model)
    session = TrackingSession(model, view, intensity_range=record.intensity_range,
                              bfloat16=record.bfloat16, feature_cache_bytes=FEATURE_CACHE_BYTES,
                              window=record.window)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="frame", file=sys.stderr, desc=output.target.name, leave=True)

    def tick(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
            bar.update(done)
        else:
            bar.update(done - bar.n)

    try:
        return track(record, session, output, resume=resume, image=image_id,
                     progress=tick if bar is not None else None, say=say or (lambda t: None))
    finally:
        if bar is not None:
            bar.close()
        session.state.source.close()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
