"""Segment everything on one frame and save the labels (``napari-sam2 segment IMAGE -o OUT``).

    napari-sam2 segment cells.tif --frame 0 -o frame0_labels.tif
    napari-sam2 segment movie.zarr --frame 12 -o seeds.zarr --variant sam2_demo --points-per-side 32

IMAGE is a TIFF, a zarr array / OME-Zarr image or a .npy file: a 2-D frame, an RGB frame
(H, W, 3), or a stack whose first axis is the frame axis (``--frame`` picks one). The labels
of that frame, (H, W) int32, are written atomically as an OME-TIFF (.tif/.tiff) or an OME-Zarr
label image (.zarr), with the options, the model and every label's scores in the provenance;
an existing output is replaced only when napari-sam2 wrote it. The options are those of
``napari_sam2.engine.automatic.AutomaticOptions`` (docs/automatic.md).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from napari_sam2.cli_options import device_name, non_negative_int, variant_name
from napari_sam2.errors import InvalidOptionError

DEFAULT_VARIANT = "sam2.1_hiera_tiny"
OUTPUT_SUFFIXES = (".tif", ".tiff", ".zarr")

#: help for each AutomaticOptions field (the defaults come from the dataclass at run time)
OPTION_HELP = {
    "points_per_side": "grid points per side of each crop (points = this squared)",
    "points_per_batch": "prompts decoded together (memory grows with it)",
    "crop_layers": "0: whole frame; k: also 2^j x 2^j crops for j = 1..k (small objects)",
    "crop_overlap": "overlap of neighbouring crops, share of the crop side",
    "iou_threshold": "keep masks whose predicted IoU is at least this",
    "stability_threshold": "keep masks whose stability score is at least this",
    "stability_offset": "logit offset of the stability score",
    "object_score_threshold": "keep masks whose object-score logit is above this",
    "nms_threshold": "a mask overlapping a better one by more than this IoU is dropped",
    "max_area_fraction": "larger masks (share of the crop) are background and dropped",
    "min_area": "pixels a label must keep, else it is dropped",
    "max_hole_area": "fill holes up to this many pixels (0: off)",
    "max_sprinkle_area": "remove specks up to this many pixels (0: off)",
    "drop_unions": "drop a mask that is two or more other masks together",
}


def _option_fields():
    from napari_sam2.engine.automatic import AutomaticOptions

    return AutomaticOptions, fields(AutomaticOptions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="TIFF, zarr / OME-Zarr or .npy: a frame or a stack")
    parser.add_argument("-o", "--output", required=True,
                        help="labels file to write: .tif/.tiff (OME-TIFF) or .zarr (OME-Zarr)")
    parser.add_argument("--frame", type=non_negative_int, default=None,
                        help="frame of a stack along its first axis (default 0)")
    parser.add_argument("--model", "--variant", dest="variant", type=variant_name, default=DEFAULT_VARIANT,
                        help=f"model variant (default {DEFAULT_VARIANT})")
    parser.add_argument("--checkpoint", default=None, help="weights file (default: official)")
    parser.add_argument("--device", type=device_name, default="auto",
                        help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--intensity-range", type=float, nargs=2, metavar=("LO", "HI"),
                        default=None, help="intensities mapped to black and white (default: "
                        "the frame's min and max; uint8: 0 and 255)")
    group = parser.add_argument_group("segmentation options (docs/automatic.md)")
    for name, help_text in OPTION_HELP.items():
        flag = "--" + name.replace("_", "-")
        if name == "drop_unions":
            group.add_argument("--keep-unions", dest=name, action="store_false", default=None,
                               help="keep masks that are two or more other masks together")
            continue
        kind = float if "threshold" in name or name in ("crop_overlap", "stability_offset",
                                                        "max_area_fraction") else int
        group.add_argument(flag, type=kind, default=None, help=help_text)


def _frame(image, frame: int | None, path: str):
    """The (H, W) or (H, W, 3) frame of a read array."""
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4) and frame is None
    if image.ndim == 2 or rgb:
        if frame:
            raise InvalidOptionError(f"--frame {frame}: {path} holds one frame "
                                     f"{image.shape}; leave --frame out")
        return image[..., :3] if rgb else image
    if image.ndim != 3:
        raise InvalidOptionError(f"{path} has shape {image.shape}: give a 2-D frame, an RGB "
                                 "frame or a stack of frames along the first axis (3-D)")
    f = frame or 0
    if f >= image.shape[0]:
        raise InvalidOptionError(f"--frame {f} is outside {path}, which has "
                                 f"{image.shape[0]} frames (0 to {image.shape[0] - 1})")
    return image[f]


def run(args: argparse.Namespace) -> int:
    out = Path(args.output).expanduser()
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidOptionError(f"--output {out}: give a name ending in .tif, .tiff or .zarr")
    options_cls, option_fields = _option_fields()
    given = {f.name: getattr(args, f.name) for f in option_fields
             if getattr(args, f.name, None) is not None}
    options = options_cls(**given)  # a value that cannot work: InvalidOptionError, before work
    from napari_sam2.training.stack_io import read_array

    frame = _frame(read_array(args.image), args.frame, args.image)

    from napari_sam2 import __version__
    from napari_sam2.engine.automatic import segment_everything
    from napari_sam2.model import load_model

    model = load_model(args.variant, args.checkpoint, device=args.device, progress=True)
    result = segment_everything(model, frame, intensity_range=args.intensity_range,
                                options=options)
    provenance = {
        "software": f"napari-sam2 {__version__}",
        "command": "segment everything",
        "image": str(args.image),
        "frame": args.frame or 0,
        "model": args.variant,
        "checkpoint": args.checkpoint,
        "intensity_range": args.intensity_range,
        "options": options.as_dict(),
        "objects": {str(k): v for k, v in result.scores().items()},
    }
    name = out.stem
    if out.suffix.lower() == ".zarr":
        from napari_sam2.io import write_labels_zarr

        written = write_labels_zarr(out, result.labels, name=name, axis_labels=("y", "x"),
                                    provenance=provenance)
    else:
        from napari_sam2.io import write_labels_tiff

        written = write_labels_tiff(out, result.labels, name=name, axis_labels=("y", "x"),
                                    provenance=provenance)
    print(f"{len(result.ids)} objects on frame {args.frame or 0} of {args.image} -> {written} "
          f"({result.n_points} points in {result.seconds:.1f} s, "
          f"{result.points_per_second:.0f} points/s)")
    return 0
