#!/usr/bin/env bash
# Put what benchmarks/bench_cuda.py needs on a GPU machine that cannot reach the internet into
# .gpu/ (ignored by git): Meta's SAM 2 code (the PyPI sam2 1.1.0 sdist, as
# benchmarks/meta_baseline.py describes) and pure-Python wheels of what its model builder
# imports (hydra-core, omegaconf, antlr4 runtime, iopath). About 1.5 MB.
#
#   bash benchmarks/prepare_cuda_run.sh          # here, with network access to the index
#
# then, on the GPU machine, from the repository root (torch with CUDA installed there):
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl
#   PYTHONPATH=/tmp/site:src:. python3 benchmarks/bench_cuda.py --meta-path .gpu/sam2-1.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/pip}"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/src
"$PIP" download -q --no-deps -d .gpu/src sam2==1.1.0 "hydra-core==1.3.8" "omegaconf==2.3.1" \
    "antlr4-python3-runtime==4.9.3" "iopath==0.1.10"
tar xzf .gpu/src/sam2-1.1.0.tar.gz -C .gpu/src
mkdir -p .gpu/sam2-1.1.0 && cp -r .gpu/src/sam2-1.1.0/sam2 .gpu/sam2-1.1.0/
# sdists become py3-none-any wheels here, so nothing is built there
"$PIP" wheel -q --no-deps --no-build-isolation -w .gpu/whl .gpu/src/antlr4*.tar.gz .gpu/src/iopath*.tar.gz
cp .gpu/src/*.whl .gpu/whl/
rm -rf .gpu/src
ls -la .gpu/whl && du -sh .gpu
