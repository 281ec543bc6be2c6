#!/usr/bin/env bash
# Set up everything napari-sam2 needs on a fresh Debian machine: system packages for a
# headless Qt/OpenGL viewer (Xvfb + Mesa), a virtual environment in .venv, CPU torch and the
# package with its test extras. Safe to run again: finished steps are fast no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 \
  libxkbcommon-x11-0 libgl1 libgl1-mesa-dri libegl1 libfontconfig1 libdbus-1-3"

missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -U pip
# torch==2.13.0 is the CPU build available on these machines; a plain "torch" would pull a
# multi-GB CUDA build. Users elsewhere can install any torch>=2.3 first.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[testing]"
echo "setup done: $(.venv/bin/python -c 'import torch, napari; print("torch", torch.__version__, "napari", napari.__version__)')"
