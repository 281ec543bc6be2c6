"""Command line entry point ``napari-sam2``; subcommands are registered by their modules.

Every error a user can cause ends in one line on stderr, ``napari-sam2 <command>: error:
<message>``, and a non-zero exit status, never a traceback (``--debug`` shows it instead). Exit
status 2: a bad option or input (ValueError, a missing file, a refused overwrite); 1: anything
else (a failed download, a full disk, a bug); 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from napari_sam2.errors import EXPECTED_ERRORS, one_line
from napari_sam2.threads import use_passive_wait

# subcommand -> module with ``add_arguments(parser)`` and ``run(args) -> int``
SUBCOMMANDS = {
    "demo": "napari_sam2.demo",
    "train": "napari_sam2.training.cli",
    "finetune": "napari_sam2.training.finetune_cli",
    "download": "napari_sam2.model.download_cli",
    "export": "napari_sam2.lineage_cli",
}

#: exit status of a bad option or input (argparse's own) and of an interrupted command
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The ``napari-sam2`` parser and {subcommand: module} of the subcommands it knows."""
    parser = OneLineParser(prog="napari-sam2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a subcommand not built yet
            if exc.name != module_name:
                raise
            continue
        modules[name] = module
        sub_parser = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        # --debug is also accepted after the subcommand; SUPPRESS keeps the top-level value
        sub_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help=argparse.SUPPRESS)
        module.add_arguments(sub_parser)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    use_passive_wait()  # before any subcommand imports torch (docs/plugin.md, "Threads")
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    prog = f"napari-sam2 {args.command}"
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        bad_input = isinstance(exc, (ValueError, FileNotFoundError, FileExistsError,
                                     IsADirectoryError, NotADirectoryError))
        return EXIT_USAGE if bad_input else 1
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, details with --debug
        if args.debug:
            raise
        print(f"{prog}: error: unexpected {type(exc).__name__}: {one_line(exc)}. This is a bug "
              f"in napari-sam2; run again with --debug and report the traceback",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
