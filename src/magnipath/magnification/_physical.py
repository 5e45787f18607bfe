"""A physically calibrated magnification estimate: the size of small dark round nuclei.

No training. Nuclei with a known physical size are a ruler inside the tissue:
small lymphocytes have round, dark, compact nuclei of about 5-8 µm across in
both H&E and IHC (haematoxylin counterstain); see docs/magnification.md for the
published ranges. The estimate measures their size in pixels and divides:

1. the haematoxylin concentration of every pixel by the fixed H-E-DAB colour
   deconvolution (:func:`magnipath.stain.haematoxylin_hed`; nothing is fitted
   to the image, so a rescaled image gives the rescaled channel);
2. dark blobs at every scale by the scale-normalised Laplacian of Gaussian
   ``-sigma^2 LoG`` on an octave pyramid (Lindeberg 1998): a blob's response is
   its contrast in OD units whatever its size, and its scale ``sigma`` grows
   with its size in pixels (``2 sqrt(2) sigma`` is the diameter of a disk);
3. overlapping detections reduced to the strongest (a nucleus counts once);
4. the population of small round dark nuclei = the :data:`N_TOP` blobs of
   highest contrast (lymphocytes are the darkest compact objects of H&E and
   IHC; pale vesicular tumour nuclei and elongated stromal nuclei answer the
   round kernel less);
5. ``mpp = LYMPHOCYTE_LOG_DIAMETER_UM / median LoG diameter`` in pixels, with an
   interval from the spread of the sizes and the spread of lymphocyte size.

Every step is the same at every pixel size except the sampling limits (the
smallest and largest scale searched), so rescaling an image by ``f`` divides the
estimate by ``f`` (tests/magnification/test_physical.py). Outside those limits,
with too few nuclei, or when the nuclei are too faint or blurred, the answer is
"cannot estimate" (:class:`CannotEstimate`), never a guess.

Coordinates are the pixels of the image given (level-0 pixels of a slide); µm/px
is the physical size of those pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from magnipath.magnification._core import MAGNIFICATIONS, MagnificationError, closest_magnification

LYMPHOCYTE_LOG_DIAMETER_UM = 4.0
"""Median LoG diameter ``2 sqrt(2) sigma`` of the strongest dark round nuclei, in µm.

The LoG scale of a real nucleus (soft edge, chromatin texture, section through a
sphere) reads smaller than its outline: lymphocyte nuclei of 5-8 µm across give a
LoG diameter of about 4 µm. The value is the mean of the readings on two real images of
known scale: a 1024 px crop of CMU-1-Small-Region (an Aperio scan whose metadata gives
0.499 µm/px; 3.7-3.8 µm at rescale factors 0.5-2) and TIAToolbox's 40x H&E target image
(4.0-4.2 µm); see docs/magnification.md (their absolute errors are therefore in-sample)."""

LYMPHOCYTE_SPREAD = 0.10
"""Relative (log) spread of the ruler itself: lymphocyte nuclear size between tissues,
fixation and section thickness (the 5-8 µm range taken as about +-2 standard deviations
around ~6.5 µm)."""

N_TOP = 60
"""Strongest blobs whose median size is read (the population of small dark nuclei)."""

N_MIN = 15
"""Fewest blobs above :data:`MIN_RESPONSE` needed for an estimate."""

MIN_RESPONSE = 0.15
"""Smallest scale-normalised LoG response (haematoxylin OD contrast) counted as a nucleus."""

BLUR_RESPONSE = 0.3
"""Median response of the selected blobs below which the nuclei are too faint or blurred."""

SIGMA_LO = 0.8
"""Smallest LoG sigma searched (px)."""

MIN_DIAMETER_PX = 3.4
"""Median LoG diameter (px) below which the nuclei are at the sampling limit: box-filtered
images read about 2.8-3 px whatever the true size below it, so coarser images (about 1.2
µm/px, 8x, and beyond) are refused as out of range."""

LEVELS = 4
"""Scales per octave (sigma ratio ``2 ** (1 / LEVELS)``)."""

H_MAX = 2.0
"""Haematoxylin concentrations are clipped to ``[0, H_MAX]`` OD and RGB values raised to at
least :data:`RGB_FLOOR` first: saturated pixels (sharpening halos, JPEG ringing in dark
nuclei) otherwise form pixel-sized blobs of huge contrast."""

RGB_FLOOR = 30

MPP_RANGE = (0.08, 2.6)
"""Estimates outside this range of µm/px (about 125x to 4x) are refused as out of range."""


class CannotEstimate(MagnificationError):
    """The pixels hold no usable ruler: too few nuclei, too blurred, or out of range."""


@dataclass
class PhysicalEstimate:
    """The answer of :func:`physical_estimate`.

    Attributes
    ----------
    mpp : float or None
        µm per pixel of the image given (None: cannot estimate).
    magnification : float or None
        ``10 / mpp`` (continuous).
    magnification_class : float or None
        The closest of :data:`~magnipath.magnification.MAGNIFICATIONS`.
    mpp_interval : (float, float) or None
        About 95 % interval of ``mpp`` (sampling spread and ruler spread).
    rel_error : float or None
        One standard deviation of ``ln(mpp)``.
    confidence : str
        ``"high"`` (rel_error < 0.08), ``"medium"`` (< 0.15), ``"low"``, or ``"none"``.
    n_nuclei : int
        Blobs used (the strongest up to :data:`N_TOP`).
    n_candidates : int
        Blobs above :data:`MIN_RESPONSE` after overlap reduction.
    diameter_px : float or None
        Median LoG diameter of the used blobs, pixels.
    response : float or None
        Median response of the used blobs (OD contrast).
    reason : str or None
        Why there is no estimate.
    """

    mpp: float | None
    magnification: float | None
    magnification_class: float | None
    mpp_interval: tuple[float, float] | None
    rel_error: float | None
    confidence: str
    n_nuclei: int
    n_candidates: int
    diameter_px: float | None
    response: float | None
    reason: str | None = None
    method: str = field(default="physical")

    @property
    def ok(self) -> bool:
        """Whether there is an estimate."""
        return self.mpp is not None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        d = asdict(self)
        if d["mpp_interval"] is not None:
            d["mpp_interval"] = [float(v) for v in d["mpp_interval"]]
        return d

    def raise_if_empty(self, what: str = "the image") -> PhysicalEstimate:
        """``self``, or :class:`CannotEstimate` naming ``what`` and the reason."""
        if self.mpp is None:
            raise CannotEstimate(f"{what}: cannot estimate the magnification ({self.reason}); "
                                 "give the scan resolution instead, e.g. 0.25 µm/px (40x) or "
                                 "0.5 µm/px (20x)")
        return self


def _downsample2(a: np.ndarray) -> np.ndarray:
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    a = a[:h, :w]
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def dark_blobs(h: np.ndarray, *, min_response: float = MIN_RESPONSE,
               valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Dark blobs of a stain concentration image at every scale (octave LoG, maxima in 3-D).

    Parameters
    ----------
    h : numpy.ndarray
        ``(y, x)`` concentration (OD units), larger = darker.
    min_response : float
        Smallest scale-normalised response kept.
    valid : numpy.ndarray, optional
        ``(y, x)`` bool; blobs centred outside it are dropped (padding, glass).

    Returns
    -------
    dict of str -> numpy.ndarray
        ``y``, ``x`` (centre, pixels of ``h``), ``sigma`` (px, interpolated
        between levels), ``response``; every blob touching the image border is
        dropped, and of overlapping blobs only the strongest is kept.
    """
    from scipy import ndimage as ndi

    img = img0 = np.asarray(h, dtype=np.float32)
    ratio = 2.0 ** (1.0 / LEVELS)
    ys, xs, ss, rs = [], [], [], []
    octave = 0
    while min(img.shape) >= 24:
        # octave 0 starts at SIGMA_LO; later octaves search sigma in [2, 4) of their own grid
        if octave == 0:
            n_lo = round(math.log2(2.0 / SIGMA_LO) * LEVELS)
            sig = [SIGMA_LO * ratio ** k for k in range(-1, n_lo + LEVELS + 1)]
        else:
            sig = [2.0 * ratio ** k for k in range(-1, LEVELS + 1)]
        stack = np.stack([-(s * s) * ndi.gaussian_laplace(img, s, mode="nearest")
                          for s in sig])
        peak = ndi.maximum_filter(stack, size=3, mode="nearest") == stack
        peak &= stack >= min_response
        peak[0] = peak[-1] = False
        k, y, x = np.nonzero(peak)
        if k.size:
            a, b, c = stack[k - 1, y, x], stack[k, y, x], stack[k + 1, y, x]
            den = a - 2.0 * b + c
            off = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
            off = np.clip(off, -0.5, 0.5)
            scale = 2.0 ** octave
            s_base = np.asarray(sig)[k] * ratio ** off * scale
            ys.append((y + 0.5) * scale - 0.5)
            xs.append((x + 0.5) * scale - 0.5)
            ss.append(s_base)
            rs.append(b)
        img = _downsample2(img)
        octave += 1
    if not ys:
        return {key: np.zeros(0) for key in ("y", "x", "sigma", "response", "darkness")}
    y, x, s, r = (np.concatenate(v) for v in (ys, xs, ss, rs))
    hh, ww = h.shape
    rad = math.sqrt(2.0) * s
    inside = (y - rad >= 0) & (x - rad >= 0) & (y + rad <= hh - 1) & (x + rad <= ww - 1)
    if valid is not None:
        iy = np.clip(np.rint(y).astype(int), 0, hh - 1)
        ix = np.clip(np.rint(x).astype(int), 0, ww - 1)
        inside &= np.asarray(valid, bool)[iy, ix]
    y, x, s, r = y[inside], x[inside], s[inside], r[inside]
    keep = _suppress_overlaps(y, x, math.sqrt(2.0) * s, r)
    y, x, s, r = y[keep], x[keep], s[keep], r[keep]
    dark = _disk_means(img0, y, x, s)
    return {"y": y, "x": x, "sigma": s, "response": r, "darkness": dark}


def _disk_means(img: np.ndarray, y: np.ndarray, x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean of ``img`` over the disk of radius ``sqrt(2) sigma`` around every centre."""
    out = np.zeros(y.size)
    hh, ww = img.shape
    for i in range(y.size):
        r = max(math.sqrt(2.0) * sigma[i], 0.75)
        y0, y1 = max(math.floor(y[i] - r), 0), min(math.ceil(y[i] + r) + 1, hh)
        x0, x1 = max(math.floor(x[i] - r), 0), min(math.ceil(x[i] + r) + 1, ww)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disk = (yy - y[i]) ** 2 + (xx - x[i]) ** 2 <= r * r
        win = img[y0:y1, x0:x1]
        out[i] = float(win[disk].mean()) if disk.any() else float(win.mean())
    return out


def _suppress_overlaps(y: np.ndarray, x: np.ndarray, radius: np.ndarray,
                       response: np.ndarray) -> np.ndarray:
    """Indices of blobs kept when every blob drops the weaker ones centred inside it."""
    from scipy.spatial import cKDTree

    if y.size == 0:
        return np.zeros(0, int)
    order = np.argsort(-response, kind="stable")
    tree = cKDTree(np.column_stack([y, x]))
    gone = np.zeros(y.size, bool)
    keep = []
    for i in order:
        if gone[i]:
            continue
        keep.append(i)
        for j in tree.query_ball_point((y[i], x[i]), float(radius[i])):
            gone[j] = True
    return np.asarray(sorted(keep), int)


def _empty(reason: str, n_candidates: int = 0, n_nuclei: int = 0,
           diameter: float | None = None, response: float | None = None) -> PhysicalEstimate:
    return PhysicalEstimate(None, None, None, None, None, "none", n_nuclei, n_candidates,
                            diameter, response, reason)


def estimate_from_blobs(blobs: dict[str, np.ndarray]) -> PhysicalEstimate:
    """The estimate from nucleus blobs (:func:`nucleus_blobs`; pooled over regions)."""
    r = np.asarray(blobs["response"], float)
    s = np.asarray(blobs["sigma"], float)
    n_cand = int(r.size)
    if n_cand < N_MIN:
        return _empty(f"too few nuclei: {n_cand} dark round blobs found, at least {N_MIN} are "
                      "needed (too little tissue, or no haematoxylin-stained nuclei)", n_cand)
    top = np.argsort(-r, kind="stable")[:N_TOP]
    log_d = np.log(2.0 * math.sqrt(2.0) * s[top])
    med = float(np.median(log_d))
    diameter = math.exp(med)
    resp = float(np.median(r[top]))
    if resp < BLUR_RESPONSE:
        return _empty(f"the nuclei are too faint or blurred (median contrast {resp:.2f} OD, at "
                      f"least {BLUR_RESPONSE} needed)", n_cand, top.size, diameter, resp)
    if diameter < MIN_DIAMETER_PX:
        return _empty(f"out of range: the nuclei are at the sampling limit ({diameter:.1f} px "
                      "across); the image is too coarse", n_cand, top.size, diameter, resp)
    mpp = LYMPHOCYTE_LOG_DIAMETER_UM / diameter
    if not MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        return _empty(f"out of range: {mpp:.3g} µm/px ({10 / mpp:.3g}x) lies outside "
                      f"{MPP_RANGE[0]}-{MPP_RANGE[1]} µm/px", n_cand, top.size, diameter, resp)
    spread = 1.4826 * float(np.median(np.abs(log_d - med)))
    sampling = 1.2533 * spread / math.sqrt(top.size)
    rel = math.sqrt(sampling ** 2 + LYMPHOCYTE_SPREAD ** 2)
    conf = "high" if rel < 0.12 else "medium" if rel < 0.2 else "low"
    mag = 10.0 / mpp
    return PhysicalEstimate(
        mpp, mag, float(closest_magnification(mag, MAGNIFICATIONS)),
        (mpp * math.exp(-1.96 * rel), mpp * math.exp(1.96 * rel)), rel, conf,
        int(top.size), n_cand, diameter, resp)


def nucleus_blobs(rgb: np.ndarray, *, valid: np.ndarray | None = None,
                  glass: int = 215) -> dict[str, np.ndarray]:
    """Blobs of one RGB region that are as dark as nuclei (see the module docstring).

    The haematoxylin channel (saturation-clipped, :data:`H_MAX`) goes through
    :func:`dark_blobs`; a blob is kept when the mean haematoxylin over its disk
    reaches the Otsu threshold of the tissue pixels (nucleus vs the rest; a
    histogram, so the same at every pixel size).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` uint8 RGB.
    valid : numpy.ndarray, optional
        ``(y, x)`` bool: where blobs may be centred and which pixels count as tissue.
    glass : int
        Pixels brighter than this in every channel are glass.
    """
    from skimage.filters import threshold_otsu

    from magnipath.stain import haematoxylin_hed

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise MagnificationError(f"expected an RGB image (y, x, 3), got shape {a.shape}.")
    h = np.clip(haematoxylin_hed(np.maximum(a, RGB_FLOOR)), 0.0, H_MAX)
    tissue = np.any(a <= glass, axis=-1)
    if valid is not None:
        tissue &= np.asarray(valid, bool)
    blobs = dark_blobs(h, valid=valid)
    v = h[tissue]
    if v.size < 16 or float(v.max()) - float(v.min()) < 1e-3:
        return {k: val[:0] for k, val in blobs.items()}
    keep = blobs["darkness"] >= threshold_otsu(v)
    return {k: val[keep] for k, val in blobs.items()}


def pool_blobs(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the blobs of several regions (their coordinates stay per region)."""
    keys = ("y", "x", "sigma", "response", "darkness")
    if not parts:
        return {k: np.zeros(0) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def physical_estimate(rgb: np.ndarray, *, valid: np.ndarray | None = None) -> PhysicalEstimate:
    """Estimate the µm/px of an RGB image of H&E or IHC tissue from its nucleus sizes.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(y, x, 3)`` uint8 RGB, any size (a few hundred nuclei are plenty).
    valid : numpy.ndarray, optional
        ``(y, x)`` bool: where blobs may be centred (e.g. not on padding).

    Returns
    -------
    PhysicalEstimate
        ``mpp`` None with a ``reason`` when it cannot estimate; use
        :meth:`PhysicalEstimate.raise_if_empty` to turn that into an error.
    """
    return estimate_from_blobs(nucleus_blobs(rgb, valid=valid))


__all__ = [
    "LYMPHOCYTE_LOG_DIAMETER_UM",
    "CannotEstimate",
    "PhysicalEstimate",
    "dark_blobs",
    "estimate_from_blobs",
    "nucleus_blobs",
    "physical_estimate",
    "pool_blobs",
]
