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
3. the blur that sampling itself adds removed from every blob: each pixel
   averages its own area (variance :data:`APERTURE_VAR` = 1/12 px²) and the LoG
   is evaluated on its octave's grid, up to half a step off the centre
   (:data:`GRID_VAR` = 1/12 grid step²); both were measured on pixel-integrated
   Gaussian blobs. ``sigma^2 = sigma_LoG^2 - sampling variance`` (the blob's own
   scale), and the contrast is divided by the dilution ``sigma^2 / sigma_LoG^2``.
   Both are fixed amounts of *pixels*, so removing them is what keeps the reading
   proportional to the pixel size when the nuclei are 2-3 px (5x, 8x); at 20x and
   40x (``sigma`` 2.5-6 px) they change it by 0.3-1.5 %;
4. overlapping detections reduced to the strongest (a nucleus counts once);
5. the population of small round dark nuclei = the :data:`N_TOP` blobs of
   highest response (lymphocytes are the darkest compact objects of H&E and
   IHC; pale vesicular tumour nuclei and elongated stromal nuclei answer the
   round kernel less);
6. when their median diameter is under :data:`UPSAMPLE_BELOW_PX` (10x and
   coarser), steps 2-5 again on the channel enlarged :data:`UPSAMPLE` times by
   cubic-spline interpolation (the discrete LoG at ``sigma`` ~1 px is coarse:
   without it a Gaussian blob of sigma 0.7 px is found at 1 of 144 sub-pixel
   positions), scales mapped back; for a large image decided on all its regions
   pooled (:func:`needs_enlargement`);
7. ``mpp = LYMPHOCYTE_LOG_DIAMETER_UM / median diameter`` in pixels, with an
   interval from the spread of the sizes and the spread of lymphocyte size.

Every step is the same at every pixel size except the sampling limits (the
smallest and largest scale searched, the enlargement switch), so rescaling an
image by ``f`` divides the estimate by ``f`` (tests/magnification/test_physical.py).
With too few nuclei, when the nuclei are too faint or blurred, or when they are
under :data:`MIN_DIAMETER_PX` (coarser than about 2.3 µm/px, where the darkest
blobs are clusters of nuclei and their size no longer follows the pixel size),
the answer is "cannot estimate" (:class:`CannotEstimate`), never a guess; 5x and
8x images are answered.

Coordinates are the pixels of the image given (level-0 pixels of a slide); µm/px
is the physical size of those pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
"""Median contrast (response with the sampling dilution undone, see :func:`dark_blobs`) of
the selected blobs below which the nuclei are too faint or blurred."""

SIGMA_LO = 0.8
"""Smallest LoG sigma searched (px)."""

MIN_DIAMETER_PX = 1.75
"""Median diameter (px, sampling blur removed) below which the nuclei are at the sampling
limit: the CMU-1 crop box-filtered to 2.5-5 µm/px reads 1.5-1.7 px whatever its true size
(clusters of nuclei, not nuclei), so a reading under 1.75 px (coarser than about 2.3
µm/px) is refused as out of range; 2.0 µm/px (5x) reads about 2 px."""

LEVELS = 4
"""Scales per octave (sigma ratio ``2 ** (1 / LEVELS)``)."""

H_MAX = 2.0
"""Haematoxylin concentrations are clipped to ``[0, H_MAX]`` OD and RGB values raised to at
least :data:`RGB_FLOOR` first: saturated pixels (sharpening halos, JPEG ringing in dark
nuclei) otherwise form pixel-sized blobs of huge contrast."""

RGB_FLOOR = 30

APERTURE_VAR = 1.0 / 12.0
"""Variance (px²) of a pixel's own area average (a box of 1 px: 1/12 per axis)."""

GRID_VAR = 1.0 / 12.0
"""Variance (grid step²) added by evaluating the LoG on a grid rather than at the centre."""

SIGMA_MIN_FRACTION = 0.3
"""A blob's own scale is at least this fraction of its LoG scale (the sampling blur is
never taken as more than ~90 % of the variance)."""

UPSAMPLE = 2
"""Enlargement of the haematoxylin channel searched when the nuclei are small."""

UPSAMPLE_BELOW_PX = 4.5
"""Median diameter (px) of the strongest blobs under which the search is repeated on the
:data:`UPSAMPLE` times enlarged channel (where the discrete LoG at sigma ~1 px is coarse)."""

_KEYS = ("y", "x", "sigma", "sigma_log", "response", "contrast", "darkness")

SMALL_NUCLEUS_BIAS = 0.12
"""Relative error of a reading at 2 px per nucleus, added to the interval as
``SMALL_NUCLEUS_BIAS * (2 px / diameter)**2``: after the sampling corrections, blobs of sigma
0.6-0.7 px (about 2 px across) still read 7-12 % large on rendered Gaussian blobs, and the
real images read up to 20 % off at 5x. The term fades with the square of the size (0.12 at
5x-like 2 px, 0.03 at 4 px, under 0.01 at 20x and finer), so coarse answers are not called
``high`` on the strength of the sampling spread alone."""

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
        One standard deviation of ``ln(mpp)``: the sampling spread of the sizes, the
        ruler's own spread (:data:`LYMPHOCYTE_SPREAD`) and, for nuclei of a few pixels,
        :data:`SMALL_NUCLEUS_BIAS`.
    confidence : str
        ``"high"`` (rel_error < 0.12), ``"medium"`` (< 0.2), ``"low"``, or ``"none"``.
    n_nuclei : int
        Blobs used (the strongest up to :data:`N_TOP`).
    n_candidates : int
        Blobs above :data:`MIN_RESPONSE` after overlap reduction.
    diameter_px : float or None
        Median diameter ``2 sqrt(2) sigma`` of the used blobs, pixels of the image (the
        sampling blur removed).
    response : float or None
        Median contrast of the used blobs (OD; the LoG response with the dilution by the
        sampling blur undone).
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


def _zoom(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` enlarged ``k`` times by cubic-spline interpolation, pixel areas aligned."""
    from scipy import ndimage as ndi

    return ndi.zoom(np.asarray(a, np.float32), k, order=3, mode="grid-mirror", grid_mode=True)


def dark_blobs(h: np.ndarray, *, min_response: float = MIN_RESPONSE,
               valid: np.ndarray | None = None, upsample: int = 1) -> dict[str, np.ndarray]:
    """Dark blobs of a stain concentration image at every scale (octave LoG, maxima in 3-D).

    Parameters
    ----------
    h : numpy.ndarray
        ``(y, x)`` concentration (OD units), larger = darker.
    min_response : float
        Smallest scale-normalised response kept.
    valid : numpy.ndarray, optional
        ``(y, x)`` bool; blobs centred outside it are dropped (padding, glass).
    upsample : int
        Search a ``upsample`` times cubic-spline enlargement of ``h`` (for nuclei of a
        few pixels, where the discrete LoG of ``h`` itself is coarse); every output
        is in the frame and pixels of ``h`` all the same.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``y``, ``x`` (centre, pixels of ``h``), ``sigma`` (the blob's own scale, px
        of ``h``: the LoG scale with the sampling blur removed, :func:`sampling_variance`),
        ``sigma_log`` (the LoG scale as found, px, interpolated between levels),
        ``response`` (scale-normalised LoG, OD), ``contrast`` (``response`` with the
        dilution by the sampling blur undone, OD) and ``darkness`` (mean of ``h`` over
        the blob's disk, OD); every blob touching the image border is dropped, and of
        overlapping blobs only the strongest is kept.
    """
    from scipy import ndimage as ndi

    k_up = int(upsample)
    img = img0 = _zoom(h, k_up) if k_up > 1 else np.asarray(h, dtype=np.float32)
    ratio = 2.0 ** (1.0 / LEVELS)
    ys, xs, ss, rs, gs = [], [], [], [], []
    octave = 0
    while min(img.shape) >= 24:
        # octave 0 starts at SIGMA_LO; later octaves search sigma in [2, 4) of their own grid
        if octave == 0:
            n_lo = round(math.log2(2.0 / SIGMA_LO) * LEVELS)
            sig = [SIGMA_LO * ratio ** k for k in range(-1, n_lo + LEVELS + 1)]
        else:
            sig = [2.0 * ratio ** k for k in range(-1, LEVELS + 1)]
        # maxima over (level, y, x) 3 x 3 x 3 neighbourhoods, three levels in memory at once
        lev = [-(s * s) * ndi.gaussian_laplace(img, s, mode="nearest") for s in sig[:2]]
        mx = [ndi.maximum_filter(a, size=3, mode="nearest") for a in lev]
        for i in range(1, len(sig) - 1):
            lev.append(-(sig[i + 1] ** 2) * ndi.gaussian_laplace(img, sig[i + 1], mode="nearest"))
            mx.append(ndi.maximum_filter(lev[-1], size=3, mode="nearest"))
            a, b, c = lev
            peak = (b >= min_response) & (b == np.maximum(np.maximum(mx[0], mx[1]), mx[2]))
            y, x = np.nonzero(peak)
            if y.size:
                a, b, c = a[y, x], b[y, x], c[y, x]
                den = a - 2.0 * b + c
                off = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
                off = np.clip(off, -0.5, 0.5)
                scale = 2.0 ** octave
                ys.append(((y + 0.5) * scale) / k_up - 0.5)
                xs.append(((x + 0.5) * scale) / k_up - 0.5)
                ss.append(sig[i] * ratio ** off * scale / k_up)
                rs.append(b)
                gs.append(np.full(y.size, scale / k_up))
            lev.pop(0)
            mx.pop(0)
        img = _downsample2(img)
        octave += 1
    if not ys:
        return {key: np.zeros(0) for key in _KEYS}
    y, x, s, r, g = (np.concatenate(v) for v in (ys, xs, ss, rs, gs))
    hh, ww = h.shape
    rad = math.sqrt(2.0) * s
    inside = (y - rad >= 0) & (x - rad >= 0) & (y + rad <= hh - 1) & (x + rad <= ww - 1)
    if valid is not None:
        iy = np.clip(np.rint(y).astype(int), 0, hh - 1)
        ix = np.clip(np.rint(x).astype(int), 0, ww - 1)
        inside &= np.asarray(valid, bool)[iy, ix]
    y, x, s, r, g = y[inside], x[inside], s[inside], r[inside], g[inside]
    own = np.maximum(s * s - sampling_variance(g), (SIGMA_MIN_FRACTION * s) ** 2)
    keep = _suppress_overlaps(y, x, math.sqrt(2.0) * s, r)
    y, x, s, r, own = y[keep], x[keep], s[keep], r[keep], own[keep]
    dark = _disk_means(img0, (y + 0.5) * k_up - 0.5, (x + 0.5) * k_up - 0.5, s * k_up)
    return {"y": y, "x": x, "sigma": np.sqrt(own), "sigma_log": s, "response": r,
            "contrast": r * (s * s) / own, "darkness": dark}


def sampling_variance(grid: np.ndarray | float) -> np.ndarray:
    """Variance (px² of the image) that sampling adds to the LoG scale of a blob.

    ``APERTURE_VAR`` (each pixel of the image averages its own area) plus
    ``GRID_VAR * grid**2`` (the LoG is evaluated on a grid of step ``grid`` px of
    the image, the octave's, so a blob's centre lies up to half a step from the
    nearest evaluation point).
    """
    return APERTURE_VAR + GRID_VAR * np.square(grid)


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
    r = np.asarray(blobs["contrast"], float)
    s = np.asarray(blobs["sigma"], float)
    n_cand = int(r.size)
    if n_cand < N_MIN:
        return _empty(f"too few nuclei: {n_cand} dark round blobs found, at least {N_MIN} are "
                      "needed (too little tissue, or no haematoxylin-stained nuclei)", n_cand)
    top = _top(blobs)
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
    small = SMALL_NUCLEUS_BIAS * (2.0 / diameter) ** 2
    rel = math.sqrt(sampling ** 2 + LYMPHOCYTE_SPREAD ** 2 + small ** 2)
    conf = "high" if rel < 0.12 else "medium" if rel < 0.2 else "low"
    mag = 10.0 / mpp
    return PhysicalEstimate(
        mpp, mag, float(closest_magnification(mag, MAGNIFICATIONS)),
        (mpp * math.exp(-1.96 * rel), mpp * math.exp(1.96 * rel)), rel, conf,
        int(top.size), n_cand, diameter, resp)


def nucleus_blobs(rgb: np.ndarray, *, valid: np.ndarray | None = None,
                  glass: int = 215, upsample: int = 1) -> dict[str, np.ndarray]:
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
    upsample : int
        Search the channel enlarged this many times (:func:`dark_blobs`; the caller
        decides, :func:`needs_enlargement`, on the blobs of all its regions pooled).

    Returns
    -------
    dict of str -> numpy.ndarray
        As :func:`dark_blobs` (frame and pixels of ``rgb``).
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
    v = h[tissue]
    if v.size < 16 or float(v.max()) - float(v.min()) < 1e-3:
        return {k: np.zeros(0) for k in _KEYS}
    blobs = dark_blobs(h, valid=valid, upsample=upsample)
    keep = blobs["darkness"] >= threshold_otsu(v)
    return {k: val[keep] for k, val in blobs.items()}


def needs_enlargement(blobs: dict[str, np.ndarray]) -> bool:
    """Whether the nuclei are small enough (median diameter of the :data:`N_TOP` strongest
    under :data:`UPSAMPLE_BELOW_PX`) to search again on the :data:`UPSAMPLE` times enlarged
    channel; decided on all regions pooled, so every region is searched the same way."""
    top = _top(blobs)
    if top.size < N_MIN:
        return False
    return 2.0 * math.sqrt(2.0) * float(np.median(blobs["sigma"][top])) < UPSAMPLE_BELOW_PX


def _top(blobs: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the :data:`N_TOP` blobs of highest LoG response (ties: input order)."""
    return np.argsort(-np.asarray(blobs["response"], float), kind="stable")[:N_TOP]


def pool_blobs(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the blobs of several regions (their coordinates stay per region)."""
    if not parts:
        return {k: np.zeros(0) for k in _KEYS}
    return {k: np.concatenate([p[k] for p in parts]) for k in _KEYS}


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
    return estimate_from_blobs(searched_blobs([rgb], valids=[valid]))


def searched_blobs(regions: Sequence[np.ndarray], *,
                   valids: Sequence[np.ndarray | None] | None = None,
                   each: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """The nucleus blobs of all ``regions`` pooled, searched again on the enlarged channel
    when the pooled nuclei are small (:func:`needs_enlargement`): the one place where that
    decision is made, for a single image and for a slide's regions alike.

    Parameters
    ----------
    regions : sequence of numpy.ndarray
        ``(y, x, 3)`` uint8 RGB regions of one image (coordinates stay per region).
    valids : sequence of numpy.ndarray or None, optional
        Per region, where blobs may be centred (:func:`nucleus_blobs`).
    each : callable, optional
        Called as ``each(i, n)`` after region ``i`` (1-based) of ``n`` in every pass
        (progress, cancellation).
    """
    valids = list(valids) if valids is not None else [None] * len(regions)
    pooled = pool_blobs([])
    for upsample in (1, UPSAMPLE):
        parts = []
        for i, (r, v) in enumerate(zip(regions, valids, strict=True)):
            parts.append(nucleus_blobs(r, valid=v, upsample=upsample))
            if each is not None:
                each(i + 1, len(regions))
        pooled = pool_blobs(parts)
        if upsample != 1 or not needs_enlargement(pooled):
            break
    return pooled


__all__ = [
    "LYMPHOCYTE_LOG_DIAMETER_UM",
    "CannotEstimate",
    "PhysicalEstimate",
    "dark_blobs",
    "estimate_from_blobs",
    "needs_enlargement",
    "nucleus_blobs",
    "physical_estimate",
    "pool_blobs",
    "searched_blobs",
]
