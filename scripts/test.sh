#!/usr/bin/env bash
# Run the whole default test suite (slow tests excluded; `scripts/test.sh -m slow` runs them),
# then the static checks: ruff, import-linter layer contracts, npe2 manifest validation.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
export QT_API=${QT_API:-pyqt6}  # the binding of the `qt` extra (qtpy, napari, pytest-qt)
.venv/bin/ruff check src qupath_bridge tests benchmarks
.venv/bin/lint-imports
.venv/bin/npe2 validate napari-magnipath --imports
.venv/bin/python -m pytest "$@"
