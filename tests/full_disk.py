"""Run a snippet of Python in a subprocess whose files cannot grow past a size (a full disk).

``RLIMIT_FSIZE`` caps the size of every file the child writes; with ``SIGXFSZ`` ignored a
write past the cap fails with ``OSError(EFBIG)``, as on a full disk. Files that already exist
are not affected, so a store written before (in the test process) stays readable.

Usage (from any test): ``from tests.full_disk import run_on_full_disk``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

_PRELUDE = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""


def run_on_full_disk(code: str, limit_bytes: int) -> subprocess.CompletedProcess:
    """Run ``code`` with every written file capped at ``limit_bytes``; returns the result
    (stdout, stderr, returncode) of the child, which imports this checkout's package."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    script = _PRELUDE.format(limit=int(limit_bytes)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)


def tree_snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or ``path`` itself) with its bytes: equal snapshots mean
    nothing was changed."""
    path = Path(path)
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary or backup siblings (``.<name>.tmp-...``, ``.<name>.old-...``) in ``folder``."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name))
