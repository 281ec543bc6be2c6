"""Download official checkpoints into the cache (``napari-sam2 download NAME``)."""

from __future__ import annotations

import argparse
import sys

from napari_sam2.errors import InvalidOptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from napari_sam2.model.download import CHECKPOINT_URLS

    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"variant(s) to download, or 'all': {', '.join(CHECKPOINT_URLS)}",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="cache folder (default: $NAPARI_SAM2_CACHE, else the per-user cache folder)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the variants, their URLs and cache paths"
    )


def run(args: argparse.Namespace) -> int:
    from napari_sam2.model.download import (
        CHECKPOINT_URLS,
        CheckpointDownloadError,
        CheckpointError,
        cache_dir_path,
        checkpoint_filename,
        checkpoint_path,
    )

    cache = cache_dir_path(args.cache_dir)
    if args.list:
        for name, url in CHECKPOINT_URLS.items():
            path = cache / checkpoint_filename(name)
            state = "cached" if path.is_file() else "not downloaded"
            print(f"{name:24s} {state:15s} {path}\n{'':24s} {url}")
        return 0
    names = list(CHECKPOINT_URLS) if args.names == ["all"] else args.names
    if not names:
        raise InvalidOptionError("give a variant name, 'all' or --list")
    unknown = [n for n in names if n not in CHECKPOINT_URLS]
    if unknown:
        raise InvalidOptionError(f"no download for {', '.join(unknown)}; choose from "
                                 f"{', '.join(CHECKPOINT_URLS)} or 'all'")
    if len(names) == 1:  # errors go to the entry point, which prints them on one line
        print(f"{names[0]}: {checkpoint_path(names[0], cache_dir=args.cache_dir)}")
        return 0
    status = 0
    for name in names:  # several: report each failure and go on with the others
        try:
            path = checkpoint_path(name, cache_dir=args.cache_dir)
        except (CheckpointDownloadError, CheckpointError) as exc:
            print(f"napari-sam2 download: error: {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {path}")
    return status
