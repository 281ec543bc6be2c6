"""The package's error vocabulary: one small set of exception types every layer raises.

This module imports nothing from the package, torch, Qt or napari, so ``model``, ``engine``,
``io``, ``training`` and ``_napari`` can all use it without breaking the one-way imports.

Every message names the file or value, says what is wrong and what to do about it. The CLI
prints it as :func:`one_line` and exits non-zero; the widget shows the same line in its status
line and as a napari notification, and changes nothing. :data:`EXPECTED_ERRORS` are the types
both treat that way (anything else is a bug and says so).

* :class:`NapariSam2Error`: base class of the package's own errors.
* :class:`DamagedFileError` (also a ``ValueError``): a file exists but cannot be read as what
  it claims to be (truncated, corrupt, wrong kind, unsupported layout).
* :class:`RefusedOverwriteError` (also a ``FileExistsError``): a save would delete or replace
  something that is not a store written by this package; nothing was touched.
* :class:`InvalidOptionError` (also a ``ValueError``): a command-line option or argument that
  cannot work (negative count, unknown device, unknown variant), found before any long work.
"""

from __future__ import annotations


class NapariSam2Error(Exception):
    """Base class of the errors napari-sam2 raises on purpose (with an actionable message)."""


class DamagedFileError(NapariSam2Error, ValueError):
    """A file that exists cannot be read: damaged, truncated, or not the kind it claims."""


class RefusedOverwriteError(NapariSam2Error, FileExistsError):
    """A save would replace something this package did not write; nothing was changed."""


class InvalidOptionError(NapariSam2Error, ValueError):
    """An option or argument that cannot work, caught before any long work starts."""


#: what the CLI and the widget treat as a user's error (shown as its message) rather than a bug
EXPECTED_ERRORS = (NapariSam2Error, ValueError, OSError)


def one_line(message) -> str:
    """``str(message)`` on one line, as the CLI prints it and the widget shows it: its non-empty
    lines, stripped, joined with "; " (an exception without a message gives its type name)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if lines:
        return "; ".join(lines)
    return type(message).__name__ if isinstance(message, BaseException) else ""
