import subprocess
import sys


def test_import_does_not_load_torch_qt_or_napari():
    code = (
        "import sys, napari_sam2; "
        "bad = [m for m in ('torch', 'qtpy', 'PyQt6', 'napari') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
