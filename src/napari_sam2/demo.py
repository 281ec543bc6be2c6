"""Run the SAM 2 plugin end to end on synthetic 16-bit cells: click, propagate, save, reopen.

``python -m napari_sam2.demo --headless`` (or ``napari-sam2 demo --headless``) needs no display
and no network: it builds the plugin widget on a napari viewer model (Qt offscreen), clicks each
cell on the first frame, propagates through the time-lapse with the worker threads the GUI uses,
scores the masks against the ground truth, saves the labels with the plugin's OME-Zarr and TIFF
writers and reopens them. Without ``--headless`` the same steps play in a napari window, which
stays open afterwards. This module is the command (options, model); the session itself, the
only part that needs Qt and napari, is ``napari_sam2._napari._demo``.

The model is loaded before anything else: missing shipped weights, a damaged ``--checkpoint``
or an unknown device raise the package's one-line error (the ``napari-sam2`` CLI prints it and
exits non-zero); the demo never falls back to random weights.
"""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from napari_sam2.cli_options import device_name, positive_float, positive_int, variant_name

    parser.add_argument("--headless", action="store_true", help="no window (Qt offscreen)")
    parser.add_argument("--model", default="sam2_demo", type=variant_name,
                        help="model variant (default sam2_demo)")
    parser.add_argument("--checkpoint", default=None, help="local checkpoint file for --model")
    parser.add_argument("--device", default="auto", type=device_name,
                        help="auto, cpu, cuda or mps")
    parser.add_argument("--frames", type=positive_int, default=12,
                        help="time-lapse length (default 12)")
    parser.add_argument("--cells", type=positive_int, default=3,
                        help="cells to click (default 3)")
    parser.add_argument("--out", default="demo_output", help="folder for the saved labels")
    parser.add_argument("--timeout", type=positive_float, default=600.0,
                        help="seconds before giving up")


def _load_model(name: str, checkpoint: str | None, device: str):
    """The trained model and where its weights came from; raises if they cannot be loaded."""
    from napari_sam2.model import load_model

    model = load_model(name, checkpoint, device=device, progress=False)
    return model, f"checkpoint {checkpoint}" if checkpoint else "shipped weights"


def run(args) -> int:
    t0 = time.perf_counter()
    model, source = _load_model(args.model, args.checkpoint, args.device)
    print(f"model: {args.model} ({source}) loaded in {time.perf_counter() - t0:.1f} s")
    from napari_sam2._napari._demo import play

    return play(args, model, source)


def main(argv=None) -> int:
    """``python -m napari_sam2.demo ARGS`` is ``napari-sam2 demo ARGS`` (same error handling)."""
    from napari_sam2 import cli

    return cli.main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
