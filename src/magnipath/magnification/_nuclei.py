"""Nucleus areas measured in images: the training target and the non-learning baseline.

Both work on the haematoxylin concentration of a Macenko / known-vector colour
deconvolution (:mod:`magnipath.stain`) and average the areas of the blobs that
do not touch the image border (complete nuclei) and are larger than a minimum.

- :func:`nucleus_mask`: fixed threshold on the haematoxylin concentration, holes
  filled; used at the *source* (40x) resolution to make the mean-area target of
  training patches when no nucleus annotations exist.
- :func:`baseline_area`: the paper's baseline (Otálora et al.): an Otsu
  threshold of the haematoxylin channel of the patch itself, mean area of the
  blobs not touching the border and larger than 20 px.
"""

from __future__ import annotations

import math

import numpy as np

from magnipath.stain import REFERENCE_VECTORS, StainError, macenko_vectors, separate

H_THRESHOLD = 0.25
"""Haematoxylin concentration (OD units) above which a pixel is nucleus, for targets."""

MIN_AREA = 20
"""Blobs of at most this many pixels are not counted (the paper's baseline rule)."""


def haematoxylin(rgb: np.ndarray, vectors: np.ndarray | None = None) -> np.ndarray:
    """Haematoxylin concentration ``(y, x)`` float32 of an RGB image (OD units).

    ``vectors`` is a ``(2, 3)`` stain matrix; default: Macenko's estimate from
    the image, or the reference vectors when the image has too little stain.
    """
    if vectors is None:
        try:
            vectors = macenko_vectors(rgb)
        except StainError:
            vectors = REFERENCE_VECTORS
    return separate(rgb, vectors)[..., 0]


def complete_blob_areas(mask: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """Areas (pixels) of the 8-connected blobs of ``mask`` not touching its border.

    Blobs of at most ``min_area`` pixels are left out. Returns float64 areas.
    """
    from scipy import ndimage as ndi

    m = np.asarray(mask, dtype=bool)
    lab, n = ndi.label(m, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros(0)
    areas = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    keep = np.ones(n + 1, bool)
    keep[0] = False
    keep[border] = False
    keep &= areas > min_area
    return areas[keep]


def nucleus_mask(rgb: np.ndarray, vectors: np.ndarray | None = None,
                 threshold: float = H_THRESHOLD) -> np.ndarray:
    """Nucleus mask ``(y, x)`` bool: haematoxylin concentration above ``threshold``, holes filled.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB, 0..255, at the resolution the areas are wanted at.
    vectors : numpy.ndarray, optional
        ``(2, 3)`` stain matrix (H row first); known vectors (synthetic slides)
        give the cleanest masks; default Macenko's estimate.
    threshold : float
        Haematoxylin concentration in OD units.
    """
    from scipy import ndimage as ndi

    return ndi.binary_fill_holes(haematoxylin(rgb, vectors) > threshold)


def mean_area(areas: np.ndarray) -> float:
    """Mean of ``areas``, NaN when empty."""
    a = np.asarray(areas, dtype=np.float64)
    return float(a.mean()) if a.size else math.nan


def baseline_area(rgb: np.ndarray, *, vectors: np.ndarray | None = None,
                  min_area: int = MIN_AREA) -> tuple[float, int]:
    """The paper's non-learning baseline: mean nucleus area of a patch, in its own pixels.

    Nuclei are the Otsu foreground of the haematoxylin channel (holes filled);
    blobs touching the border or of at most ``min_area`` pixels are ignored.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB patch, 0..255.
    vectors : numpy.ndarray, optional
        ``(2, 3)`` stain matrix; default Macenko's estimate from the patch.
    min_area : int
        Smallest blob counted is ``min_area + 1`` pixels.

    Returns
    -------
    (float, int)
        Mean area in pixels (NaN when no blob qualifies) and the number of blobs.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    h = haematoxylin(rgb, vectors)
    if float(h.max()) - float(h.min()) < 1e-6:
        return math.nan, 0
    mask = ndi.binary_fill_holes(h > threshold_otsu(h))
    areas = complete_blob_areas(mask, min_area)
    return mean_area(areas), int(areas.size)
