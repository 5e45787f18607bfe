"""Helpers of the tiling tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from magnipath.rasterize import rasterize
from magnipath.synth import SYNTH_CLASSES


def truth_label(shapes, box, downsample: float, size: int) -> np.ndarray:
    """The reference label of a level-0 box: the rasteriser applied to the ground truth."""
    return rasterize(shapes, box, downsample, (size, size), fill=SYNTH_CLASSES.ignore_index)


def no_leftovers(folder: Path, name: str) -> bool:
    """Neither ``name`` nor a temporary ``.name.*.tmp`` sibling exists in ``folder``."""
    return not (folder / name).exists() and not list(folder.glob(f".{name}.*"))
