"""The non-learning baseline: Otsu nuclei -> mean area -> magnification via a calibration table.

The table (:class:`AreaTable`) holds, per magnification class, the mean of the
baseline's own area measurements on training patches. :data:`DEFAULT_TABLE` was
measured on synthetic H&E slides (``magnipath magnification make-data
--synthetic``; see ``docs/magnification.md``) and serves images when no trained
model is given; a trained model folder carries a table measured on its own
training data.
"""

from __future__ import annotations

import numpy as np

from magnipath.magnification._core import AreaTable
from magnipath.magnification._nuclei import baseline_area
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

DEFAULT_TABLE = AreaTable(
    magnifications=(5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0),
    mean_areas=(58.4, 57.6, 53.2, 69.8, 94.1, 201.1, 295.8),
    empty_class=5.0,
    counts=(235, 237, 240, 240, 240, 240, 240),
)
"""Baseline calibration used without a model: means of the baseline's areas on the 1680
training patches of ``benchmarks/bench_magnification.py``'s dataset (the 8 training slides
of 12 synthetic 40x slides of 4096 px, seeds 100-111, split by slide, 30 patches per class
and slide). Re-measured on 2026-12-04 after the synthetic nuclei became soft-rimmed
sectioned spheres (issue 15 item 4; the table of 2026-11-22 read 69.3, 53.7, 57.4, 104.8,
168.6, 351.6, 595.8 px on the old uniformly dark nuclei). At 10x and below most Otsu blobs
of a lymphocyte fall under the 20 px rule, so 5x, 8x and 10x are barely told apart; at 5x
and 8x a few patches have no qualifying blob (``empty_class`` 5x)."""


def baseline_areas(patches: np.ndarray, *, progress: ProgressCallback | None = None,
                   cancel: CancelCallback | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Baseline mean nucleus area (px) and blob count of every patch ``(N, y, x, 3)``.

    Returns float64 areas (NaN where no blob qualifies) and int counts.
    """
    n = len(patches)
    areas = np.full(n, np.nan)
    counts = np.zeros(n, np.int64)
    for i in range(n):
        areas[i], counts[i] = baseline_area(np.asarray(patches[i]))
        if i % 16 == 0:
            check_cancel(cancel)
            report(progress, "magnification/baseline", i + 1, n)
    report(progress, "magnification/baseline", n, n)
    return areas, counts


def calibrate_baseline(patches: np.ndarray, magnifications: np.ndarray, *,
                       progress: ProgressCallback | None = None,
                       cancel: CancelCallback | None = None) -> AreaTable:
    """Fit the baseline's calibration table on training patches of known magnification."""
    areas, _ = baseline_areas(patches, progress=progress, cancel=cancel)
    return AreaTable.fit(areas, magnifications)
