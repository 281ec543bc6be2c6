"""The one line the widget shows for an error (status line and napari notification).

Expected errors (the package's own ``NapariSam2Error``s, ``ValueError``, ``OSError``: a damaged
checkpoint, a missing file, an unknown device) already carry a message that names the file or
value, what is wrong and what to do: it is shown as it is, on one line, the same line the CLI
prints. Anything else is a bug: the line says what was being done and asks for a report, and
the traceback goes to the log (``napari_sam2`` logger) instead of the user's screen.
"""

from __future__ import annotations

import logging

from napari_sam2.errors import NapariSam2Error

EXPECTED_ERRORS = (NapariSam2Error, ValueError, OSError)

log = logging.getLogger("napari_sam2")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def error_message(exc: BaseException, doing: str) -> str:
    """The line for ``exc`` raised while ``doing`` (e.g. ``"loading sam2_demo"``)."""
    if isinstance(exc, EXPECTED_ERRORS):
        return one_line(str(exc) or f"{doing} failed ({type(exc).__name__})")
    log.error("%s failed", doing, exc_info=(type(exc), exc, exc.__traceback__))
    return one_line(
        f"{doing} failed unexpectedly ({type(exc).__name__}: {exc}); nothing was changed; "
        "please report this with the log"
    )
