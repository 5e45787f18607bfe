#!/usr/bin/env bash
# Download (here, where PyPI is reachable) the wheels MagniPath needs on the GPU machine whose
# image lacks them (Python 3.12, manylinux x86_64; see docs/gpu.md). They land in .whl/ (git
# ignores it locally: `echo /.whl/ >> .git/info/exclude`); benchmarks/gpu.sh installs them with
# pip --no-index into /tmp/site. Keep one version of each.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/work/main/.venv/bin/python}
mkdir -p .whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_34_x86_64)
for spec in "imagecodecs==2026.3.6" "zarr==3.1.6" "numcodecs==0.16.6" "donfig==0.8.1.post1" \
            "google-crc32c==1.9.0" "shapely==2.2.0" "segmentation_models_pytorch==0.6.0"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLAT[@]}" -d .whl "$spec"
done
du -sh .whl && ls .whl
