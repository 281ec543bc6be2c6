"""OpenMP wait policy for torch on the CPU, chosen before torch starts its thread pool.

torch's CPU builds run their parallel regions on an OpenMP runtime (libgomp on Linux). By
default a worker that has finished its share spins (busy-waits) before it sleeps, and the
thread that waits for the team spins too. When the cores are shared (napari's event loop, the
plugin's prefetch worker, another program) the spinning threads take the cores the working
threads need: on a 2-core machine with one busy process beside it torch was measured about
25 times slower than with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep), with identical
results (see docs/plugin.md, "Threads").

The runtime reads ``OMP_*`` environment variables once, when torch loads it, so
:func:`use_passive_wait` must run before ``import torch``: the ``napari-sam2`` command and the
plugin's package call it first. A policy already in the environment (the user's) is kept; the
thread count is left to torch (one thread per core). This module imports only the standard
library.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

POLICY_VAR = "OMP_WAIT_POLICY"

_warned = False


def use_passive_wait() -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for torch's OpenMP threads if it can still take effect.

    Returns what happened: ``"set"`` (torch not imported yet, no policy in the environment: now
    PASSIVE), ``"kept"`` (the environment already names a policy: left as it is) or ``"too
    late"`` (torch was imported first, e.g. by another napari plugin, without a policy: its
    runtime keeps spin-waiting; one warning per process says how to set it).
    """
    global _warned
    if os.environ.get(POLICY_VAR):
        return "kept"
    if "torch" in sys.modules:
        if not _warned:
            _warned = True
            log.warning(
                "torch was imported before napari-sam2 could set %s=PASSIVE, so its CPU threads "
                "spin while they wait; on a busy or small machine this can make SAM 2 many "
                "times slower. Start napari with the variable set, e.g. `%s=PASSIVE napari` "
                "(set it to ACTIVE to keep spinning and silence this message)",
                POLICY_VAR, POLICY_VAR)
        return "too late"
    os.environ[POLICY_VAR] = "PASSIVE"
    return "set"
