"""The one line the widget shows for an error (status line and napari notification).

Expected errors (the package's own ``NapariSam2Error``s, ``ValueError``, ``OSError``: a damaged
checkpoint, a missing file, an unknown device) already carry a message that names the file or
value, what is wrong and what to do: it is shown as it is, on one line, the same line the CLI
prints. Anything else is a bug: the line says what was being done and asks for a report, and
the traceback goes to the log (``napari_sam2`` logger) instead of the user's screen.

:class:`Feedback` is the explicit set of callbacks through which the jobs talk to the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from napari_sam2.errors import EXPECTED_ERRORS, one_line

log = logging.getLogger("napari_sam2")


def error_message(exc: BaseException, doing: str) -> str:
    """The line for ``exc`` raised while ``doing`` (e.g. ``"loading sam2_demo"``)."""
    if isinstance(exc, EXPECTED_ERRORS):
        return one_line(str(exc) or f"{doing} failed ({type(exc).__name__})")
    log.error("%s failed", doing, exc_info=(type(exc), exc, exc.__traceback__))
    return one_line(
        f"{doing} failed unexpectedly ({type(exc).__name__}: {exc}); nothing was changed; "
        "please report this with the log"
    )


def _nothing(*args) -> None:
    pass


@dataclass
class Feedback:
    """How the jobs (``Segmenter``, ``Tracker``) report back to whoever drives them.

    The controller wires these to its signals and the viewer; a headless caller passes plain
    functions (e.g. ``list.append``). Every call happens on the thread that runs the handlers
    (napari's main thread, or the caller's with ``run_now``).

    Attributes:
        say: a status line.
        error: a one-line error (the controller also shows it as a napari notification).
        busy: a job was queued (True); the queue's ``on_idle`` says when it is empty again.
        progress: ``(frames done, frames in the run, frames/s)`` during a propagation.
        written: SAM wrote into a Labels target (the controller records provenance).
        objects_changed: the objects or the frames they cover changed.
        exists: whether a layer is still there to write into (the viewer's layer list).
    """

    say: Callable[[str], None] = _nothing
    error: Callable[[str], None] = _nothing
    busy: Callable[[bool], None] = _nothing
    progress: Callable[[int, int, float], None] = _nothing
    written: Callable[[], None] = _nothing
    objects_changed: Callable[[], None] = _nothing
    exists: Callable[[object], bool] = field(default=lambda layer: True)

    def failed(self, doing: str) -> Callable[[BaseException], None]:
        """An ``errored`` handler: one line for an exception raised while ``doing``."""
        return lambda exc: self.error(error_message(exc, doing))
