"""The OpenMP wait policy reaches torch's runtime: set by the CLI, the plugin package and the
demo before torch is imported, a user's own value kept, and a warning (nothing broken) when torch
was imported first. Each case runs in a fresh Python, because the runtime reads the variable
once, when torch loads it; ``OMP_DISPLAY_ENV=verbose`` makes libgomp print what it read."""

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"

# the runtime's own report (libgomp, torch's CPU builds on Linux): PASSIVE = no spinning. Its
# OMP_WAIT_POLICY line says PASSIVE also when unset, while it then spins 300000 times.
RUNTIME_PASSIVE = "GOMP_SPINCOUNT = '0'"

# imports torch and runs a parallel region; prints its result (small whole numbers, exact in
# float32) so that a broken runtime shows
USE_TORCH = ("import torch; x = (torch.arange(4096) % 7).float().reshape(64, 64); "
             "print('sum', int((x @ x.T).sum().item()))")
# sum of x @ x.T = sum over columns k of (sum over rows of x[:, k]) ** 2
TORCH_SUM = "sum " + str(sum(sum((64 * r + k) % 7 for r in range(64)) ** 2 for k in range(64)))


def _child(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python with no OMP_WAIT_POLICY unless ``env`` names one."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    base.update(PYTHONPATH=str(SRC), OMP_DISPLAY_ENV="verbose", OMP_NUM_THREADS="2", **env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=base, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_set_before_torch_reaches_the_runtime():
    r = _child("from napari_sam2.threads import use_passive_wait; import os; "
               "print(use_passive_wait(), os.environ['OMP_WAIT_POLICY']); " + USE_TORCH)
    assert r.stdout.splitlines()[0] == "set PASSIVE", r.stdout
    assert TORCH_SUM in r.stdout
    assert RUNTIME_PASSIVE in r.stderr, r.stderr


def test_without_it_the_runtime_does_not_wait_passively():
    """The control: the check above can fail (no policy -> libgomp's default, not PASSIVE)."""
    r = _child(USE_TORCH)
    assert "GOMP_SPINCOUNT = '" in r.stderr and RUNTIME_PASSIVE not in r.stderr, r.stderr


def test_users_own_policy_is_kept():
    r = _child("from napari_sam2.threads import use_passive_wait; import os; "
               "print(use_passive_wait(), os.environ['OMP_WAIT_POLICY']); " + USE_TORCH,
               OMP_WAIT_POLICY="ACTIVE")
    assert r.stdout.splitlines()[0] == "kept ACTIVE", r.stdout
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in r.stderr, r.stderr
    assert RUNTIME_PASSIVE not in r.stderr


def test_torch_imported_first_warns_once_and_works():
    r = _child("import logging, os; logging.basicConfig(format='%(levelname)s %(message)s'); "
               + USE_TORCH + "; from napari_sam2.threads import use_passive_wait; "
               "print(use_passive_wait(), use_passive_wait(), os.environ.get('OMP_WAIT_POLICY')); "
               "y = torch.ones(300, 300) @ torch.ones(300, 300); print('after', int(y[0, 0]))")
    lines = r.stdout.splitlines()
    assert lines == [TORCH_SUM, "too late too late None", "after 300"], r.stdout
    warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, r.stderr
    assert "torch was imported before napari-sam2" in warnings[0]
    assert "`OMP_WAIT_POLICY=PASSIVE napari`" in warnings[0]


def test_cli_sets_it_before_a_subcommand_imports_torch():
    """A subcommand registered the way the real ones are; it imports torch in ``run``."""
    code = (
        "import sys, types\n"
        "from napari_sam2 import cli\n"
        "probe = types.ModuleType('probe_cmd', 'probe: imports torch')\n"
        "probe.add_arguments = lambda parser: None\n"
        "def run(args):\n"
        "    import os\n"
        "    print('torch loaded before run:', 'torch' in sys.modules)\n"
        f"    {USE_TORCH}\n"
        "    print(os.environ['OMP_WAIT_POLICY'])\n"
        "    return 0\n"
        "probe.run = run\n"
        "sys.modules['probe_cmd'] = probe\n"
        "cli.SUBCOMMANDS['probe'] = 'probe_cmd'\n"
        "sys.exit(cli.main(['probe']))\n"
    )
    r = _child(code)
    assert r.stdout.splitlines() == ["torch loaded before run: False", TORCH_SUM, "PASSIVE"]
    assert RUNTIME_PASSIVE in r.stderr, r.stderr


def test_plugin_entry_points_set_it_without_importing_torch():
    """npe2 imports the command modules named in napari.yaml; the package sets the policy."""
    r = _child("import sys, os\n"
               "import napari_sam2._napari._widget, napari_sam2._napari._reader\n"
               "import napari_sam2._napari._sample_data, napari_sam2._napari._writer\n"
               "print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'])\n" + USE_TORCH)
    assert r.stdout.splitlines()[0] == "False PASSIVE", r.stdout
    assert RUNTIME_PASSIVE in r.stderr, r.stderr


def test_python_m_demo_sets_it():
    r = _child("import os, runpy, sys\n"
               "sys.argv = ['napari_sam2.demo', '--help']\n"
               "try:\n"
               "    runpy.run_module('napari_sam2.demo', run_name='__main__')\n"
               "except SystemExit as exc:\n"
               "    print('exit', exc.code, os.environ['OMP_WAIT_POLICY'])\n")
    assert r.stdout.splitlines()[-1] == "exit 0 PASSIVE", r.stdout


def test_threads_module_and_cli_load_no_torch():
    r = _child("import sys, napari_sam2.threads, napari_sam2.cli; "
               "print([m for m in ('torch', 'qtpy', 'napari') if m in sys.modules])")
    assert r.stdout.strip() == "[]", r.stdout
