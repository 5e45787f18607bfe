"""H&E stain separation and normalisation after Macenko et al. (ISBI 2009), one pass.

Beer–Lambert: an RGB pixel ``I`` (0..255, background ``Io``) has optical density
``OD = -ln((I + 1) / Io)`` per channel, and ``OD = C @ V`` where ``V`` is the
``(2, 3)`` stain matrix (unit OD vectors of haematoxylin then eosin, (r, g, b))
and ``C`` the two stain concentrations. Macenko's method estimates ``V`` from
one image without iteration: drop transparent pixels (optical-density magnitude
``|OD|`` below ``beta``), take the plane of the two principal directions of the remaining OD
vectors, and pick the robust extremes (``alpha`` and ``100 - alpha``
percentiles) of the angle of every projected OD vector in that plane.

Used by Pearce's mitosis detector (METHODS.md, paper 001) as extra input
channels (RGB + H + E, see :func:`hed_channels`) or to normalise the stain of a
tile to a reference (:func:`normalise`). Arrays are ``(y, x, 3)`` uint8 RGB.

Examples
--------
>>> import numpy as np
>>> from magnipath.stain import REFERENCE_VECTORS, separate
>>> od = np.array([[[1.0, 0.0]]]) @ REFERENCE_VECTORS        # pure haematoxylin, 1 OD unit
>>> rgb = np.clip(255 * np.exp(-od) - 1, 0, 255).round().astype(np.uint8)
>>> np.round(separate(rgb, REFERENCE_VECTORS), 1).tolist() == [[[1.0, 0.0]]]
True
"""

from __future__ import annotations

import numpy as np

from magnipath._errors import MagnipathError

__all__ = [
    "HED_VECTORS",
    "REFERENCE_MAX_CONC",
    "REFERENCE_VECTORS",
    "StainError",
    "deconvolve",
    "haematoxylin_hed",
    "hed_channels",
    "macenko_vectors",
    "max_concentrations",
    "normalise",
    "optical_density",
    "residual_vector",
    "separate",
]

REFERENCE_VECTORS = np.array([[0.5626, 0.7201, 0.4062],
                              [0.2159, 0.8012, 0.5581]])
"""Macenko's reference stain matrix ``(2, 3)``: haematoxylin row, eosin row, (r, g, b) OD."""
REFERENCE_VECTORS = REFERENCE_VECTORS / np.linalg.norm(REFERENCE_VECTORS, axis=1, keepdims=True)

REFERENCE_MAX_CONC = np.array([1.9705, 1.0308])
"""Reference 99th-percentile concentrations (OD units) of H and E used by :func:`normalise`."""

MIN_PIXELS = 50
"""Fewest stained pixels (``|OD|`` above ``beta``) Macenko's method accepts."""


class StainError(MagnipathError):
    """Stain vectors cannot be estimated (too little tissue, wrong image type)."""


def _rgb(rgb: np.ndarray, what: str = "image") -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise StainError(f"{what}: expected an RGB array (..., 3), got shape {a.shape}; "
                         "drop an alpha channel or convert grey images to RGB first.")
    return a


def optical_density(rgb: np.ndarray, background: float = 255.0) -> np.ndarray:
    """Optical density ``-ln((I + 1) / background)`` of every channel.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(..., 3)`` RGB, values 0..255 (uint8 or float).
    background : float
        Intensity of unstained glass (``Io``), 255 for white-balanced scans.

    Returns
    -------
    numpy.ndarray
        float64 ``(..., 3)``; 0 for glass, larger for darker pixels (clipped at 0).
    """
    a = _rgb(rgb).astype(np.float64)
    return np.maximum(-np.log((a + 1.0) / float(background)), 0.0)


def macenko_vectors(rgb: np.ndarray, *, beta: float = 0.15, alpha: float = 1.0,
                    background: float = 255.0) -> np.ndarray:
    """Estimate the H&E stain matrix of an image by Macenko's method (no iteration).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` (or any ``(..., 3)``) RGB image, 0..255.
    beta : float
        OD threshold: pixels whose OD vector is shorter than ``beta`` (glass,
        faint areas) are ignored. (Some implementations drop a pixel when *any*
        channel is below ``beta``; that discards pale eosin, whose red OD is
        tiny, and biases the eosin vector, so the magnitude is used here.)
    alpha : float
        Percentile (0..50) of the angle distribution taken as each extreme
        direction; small values are robust to outliers.
    background : float
        Intensity of unstained glass.

    Returns
    -------
    numpy.ndarray
        float64 ``(2, 3)``: row 0 haematoxylin, row 1 eosin; unit OD vectors
        ``(r, g, b)`` with non-negative entries. Haematoxylin is the direction
        with the larger red optical density.

    Raises
    ------
    StainError
        Fewer than :data:`MIN_PIXELS` stained pixels, or a degenerate colour
        distribution (e.g. a grey image), so no two stains can be told apart.
    """
    if not 0.0 <= alpha < 50.0:
        raise StainError(f"alpha must be a percentile in [0, 50), got {alpha}.")
    od = optical_density(rgb, background).reshape(-1, 3)
    od = od[np.linalg.norm(od, axis=1) > beta]
    if len(od) < MIN_PIXELS:
        raise StainError(f"only {len(od)} stained pixels (|OD| > {beta}); "
                         "Macenko's method needs tissue in the image. Use a region with "
                         "stained tissue or pass fixed stain vectors instead.")
    cov = np.cov(od, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    plane = evecs[:, [2, 1]]  # two largest
    if evals[1] <= 1e-12 * max(evals[2], 1e-30):
        raise StainError("the image's colours lie on one line in optical-density space "
                         "(grey or a single stain); two stains cannot be separated.")
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)  # point into the positive octant
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    vecs = np.stack([v1, v2])
    vecs = vecs * np.where(vecs.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    vecs = np.clip(vecs, 0.0, None)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    if np.any(norms < 1e-9):
        raise StainError("degenerate stain direction found; the image does not look like H&E.")
    vecs = vecs / norms
    if vecs[0, 0] < vecs[1, 0]:  # haematoxylin absorbs more red than eosin
        vecs = vecs[::-1]
    return np.ascontiguousarray(vecs)


def _check_vectors(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    if v.shape != (2, 3) or not np.all(np.isfinite(v)):
        raise StainError(f"stain vectors must be a finite (2, 3) array (H row, E row), "
                         f"got shape {v.shape}.")
    n = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(n == 0):
        raise StainError("a stain vector is zero; give two non-zero OD directions.")
    return v / n


def separate(rgb: np.ndarray, vectors: np.ndarray, *, background: float = 255.0) -> np.ndarray:
    """Stain concentrations of every pixel (colour deconvolution, least squares).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB, 0..255.
    vectors : numpy.ndarray
        ``(2, 3)`` stain matrix, haematoxylin row first (e.g. from
        :func:`macenko_vectors`); rows are normalised to unit length.
    background : float
        Intensity of unstained glass.

    Returns
    -------
    numpy.ndarray
        float32 ``(y, x, 2)``: haematoxylin then eosin concentration in OD
        units (may be slightly negative where the two-stain model does not fit).
    """
    v = _check_vectors(vectors)
    od = optical_density(rgb, background)
    pinv = np.linalg.pinv(v)  # (3, 2): OD (.., 3) @ pinv -> C (.., 2)
    return (od @ pinv).astype(np.float32)


def max_concentrations(conc: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Robust maximum (``percentile``) of each stain's concentration, shape ``(2,)``."""
    c = np.asarray(conc, dtype=np.float64).reshape(-1, 2)
    if len(c) == 0:
        raise StainError("no pixels to measure stain concentrations on.")
    return np.percentile(c, percentile, axis=0)


def normalise(rgb: np.ndarray, target_vectors: np.ndarray = REFERENCE_VECTORS,
              target_max_conc: np.ndarray = REFERENCE_MAX_CONC, *,
              source_vectors: np.ndarray | None = None, beta: float = 0.15,
              alpha: float = 1.0, background: float = 255.0) -> np.ndarray:
    """Re-render an image with a target stain matrix and concentration scale.

    The image's own stain matrix is estimated by :func:`macenko_vectors`
    (unless ``source_vectors`` is given), its concentrations are scaled so that
    their 99th percentiles equal ``target_max_conc``, and the result is
    rendered with ``target_vectors``: ``I = background * exp(-C @ V_target)``.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB image, 0..255.
    target_vectors : numpy.ndarray
        ``(2, 3)`` stain matrix to render with (default: Macenko's reference).
    target_max_conc : numpy.ndarray
        ``(2,)`` 99th-percentile H and E concentrations of the target, OD units.
    source_vectors : numpy.ndarray, optional
        The image's own stain matrix when known.
    beta, alpha, background : float
        As in :func:`macenko_vectors`.

    Returns
    -------
    numpy.ndarray
        uint8 ``(y, x, 3)``, same shape as ``rgb``.
    """
    src = macenko_vectors(rgb, beta=beta, alpha=alpha, background=background) \
        if source_vectors is None else _check_vectors(source_vectors)
    tgt = _check_vectors(target_vectors)
    tmax = np.asarray(target_max_conc, dtype=np.float64).reshape(2)
    conc = separate(rgb, src, background=background).astype(np.float64)
    smax = max_concentrations(conc)
    if np.any(smax <= 0):
        raise StainError("one stain is absent from the image (its concentrations are all "
                         "zero), so its scale cannot be matched.")
    conc = conc * (tmax / smax)
    out = float(background) * np.exp(-(conc @ tgt)) - 1.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def hed_channels(rgb: np.ndarray, vectors: np.ndarray | None = None, *,
                 beta: float = 0.15, alpha: float = 1.0,
                 background: float = 255.0) -> np.ndarray:
    """Haematoxylin and eosin concentration channels, for RGB + H + E model inputs.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB tile, 0..255.
    vectors : numpy.ndarray, optional
        ``(2, 3)`` stain matrix; default: estimated from the tile by
        :func:`macenko_vectors`, falling back to :data:`REFERENCE_VECTORS`
        when the tile has too little tissue for the estimate.
    beta, alpha, background : float
        As in :func:`macenko_vectors`.

    Returns
    -------
    numpy.ndarray
        float32 ``(y, x, 2)``: H then E concentration (OD units, clipped at 0).
    """
    if vectors is None:
        try:
            vectors = macenko_vectors(rgb, beta=beta, alpha=alpha, background=background)
        except StainError:
            vectors = REFERENCE_VECTORS
    return np.maximum(separate(rgb, vectors, background=background), 0.0)


def residual_vector(vectors: np.ndarray) -> np.ndarray:
    """Unit OD direction orthogonal to both stains (the cross product H x E, made positive).

    With it the stain matrix becomes an invertible ``(3, 3)`` basis, as in
    HistomicsTK's colour deconvolution of two-stain images.
    """
    v = _check_vectors(vectors)
    r = np.cross(v[0], v[1])
    n = np.linalg.norm(r)
    if n < 1e-9:
        raise StainError("the two stain vectors are parallel; they cannot be separated.")
    r = r / n
    return r if r.sum() >= 0 else -r


def deconvolve(rgb: np.ndarray, vectors: np.ndarray, *, background: float = 255.0) -> np.ndarray:
    """Colour deconvolution into haematoxylin, eosin and the residual channel.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB, 0..255.
    vectors : numpy.ndarray
        ``(2, 3)`` stain matrix, haematoxylin row first.

    Returns
    -------
    numpy.ndarray
        float32 ``(y, x, 3)``: H and E concentrations (equal to :func:`separate`'s)
        and the residual, the part of the optical density that neither stain
        explains (OD units). RGB plus these three channels are the six input
        layers of Pearce's mitosis classifier.
    """
    v = _check_vectors(vectors)
    basis = np.vstack([v, residual_vector(v)])  # (3, 3): OD = C @ basis
    return (optical_density(rgb, background) @ np.linalg.inv(basis)).astype(np.float32)


HED_VECTORS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
"""Ruifrok and Johnston's fixed H, E, DAB optical-density vectors ``(3, 3)`` (rows, (r, g, b)).

The same vectors as :func:`skimage.color.rgb2hed`; rows normalised to unit length.
One matrix for H&E and for IHC (haematoxylin counterstain + DAB)."""
HED_VECTORS = HED_VECTORS / np.linalg.norm(HED_VECTORS, axis=1, keepdims=True)


def haematoxylin_hed(rgb: np.ndarray, *, background: float = 255.0) -> np.ndarray:
    """Haematoxylin concentration of every pixel by the fixed H-E-DAB deconvolution.

    Unlike :func:`hed_channels` nothing is estimated from the image, so the
    result of a pixel depends on that pixel only (a rescaled image gives the
    rescaled channel) and DAB-brown IHC stain is not counted as haematoxylin.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` RGB, 0..255.
    background : float
        Intensity of unstained glass.

    Returns
    -------
    numpy.ndarray
        float32 ``(y, x)``: haematoxylin concentration in OD units (may be
        slightly negative where the three-stain model does not fit).
    """
    od = optical_density(rgb, background).astype(np.float32)
    return od @ np.linalg.inv(HED_VECTORS)[:, 0].astype(np.float32)
