"""Stain references and slide-level stain normalisation (Macenko), for training and inference.

A :class:`StainReference` is the H&E look of a set of images: the colour of
their bare glass (median of the 2 % brightest pixels: the light the optical
densities are measured against, so a tinted background is not taken for stain), the two
stain vectors (Macenko's method over stained pixels) and the robust maximum (99th
percentile over stained pixels) of each stain's concentration. Training measures one on
the training tiles and stores it in the model card
(``card.normalisation["stain_reference"]``); ``magnipath infer --normalise-stain``
measures one on a sample of the slide's tissue windows and maps every window
from the slide's stain to the model's (:class:`StainNormaliser`). One fixed
mapping per slide keeps neighbouring windows consistent (no per-tile estimate).

**Vectors at full resolution.** Scanners store each pyramid level as JPEG, usually with
chroma subsampled (4:2:0). At a coarse level a nucleus is a few pixels, so compression
smears its colour into its neighbours and adds hues no stain mixture has; those
outliers are exactly the extreme hues Macenko's method reads. On ``synth --stain
scanner-b`` (quality 60) the eosin vector read at 2 µm/px was (0.00, 0.97, 0.23) for a
true (0.13, 0.94, 0.31), and the mapped colour was off by 16 levels of blue; read on
level-0 patches (0.25 µm/px, where a nucleus spans many chroma blocks) it was
(0.07, 0.96, 0.27) and 6 levels (uncompressed pixels give the true vector at either
resolution). Training and inference therefore read the vectors on level-0 patches
(:func:`full_resolution_patches`, ``vector_mpp`` in the reference) and the glass colour
and concentration maxima at the model's resolution, where the map is applied.
References without ``vector_mpp`` (models trained before) are matched by reading the
slide's vectors at the model's resolution too.

Arrays are ``(..., 3)`` uint8 RGB; optical densities follow :mod:`magnipath.stain`
(``OD = -ln((I + 1) / 255)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from magnipath.stain import StainError, macenko_vectors, optical_density, separate

__all__ = ["StainNormaliser", "StainReference", "full_resolution_patches", "glass_colour",
           "measure_reference"]

BETA = 0.15
"""|OD| above which a pixel counts as stained (as :func:`magnipath.stain.macenko_vectors`)."""
MAX_PIXELS = 400_000
VECTOR_PATCH = 256
"""Side (level-0 pixels) of the full-resolution patches the stain vectors are read on."""


@dataclass(frozen=True)
class StainReference:
    """Stain vectors ``(2, 3)`` (H row, E row; unit OD, (r, g, b)), the 99th-percentile
    concentrations ``(2,)`` (OD units) over stained pixels, the glass colour ``(3,)``
    (0..255 RGB), the number of stained pixels used, and ``vector_mpp``: the µm/px of the
    pixels the vectors were read on (None: the same pixels as the rest)."""

    vectors: tuple[tuple[float, float, float], tuple[float, float, float]]
    max_conc: tuple[float, float]
    n_pixels: int = 0
    background: tuple[float, float, float] = (255.0, 255.0, 255.0)
    vector_mpp: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (stored in the model card)."""
        return {"vectors": [[float(c) for c in v] for v in self.vectors],
                "max_conc": [float(c) for c in self.max_conc],
                "background": [float(c) for c in self.background],
                "n_pixels": int(self.n_pixels),
                "vector_mpp": None if self.vector_mpp is None else float(self.vector_mpp),
                "method": "macenko on glass-balanced optical density"
                + (" of level-0 patches" if self.vector_mpp is not None else "")
                + ", 99th percentile of stained pixels (|OD| > 0.15)"}

    @classmethod
    def from_dict(cls, d: dict) -> StainReference:
        """Inverse of :meth:`to_dict`; :class:`StainError` when malformed."""
        try:
            v = np.asarray(d["vectors"], dtype=np.float64)
            m = np.asarray(d["max_conc"], dtype=np.float64)
            b = np.asarray(d.get("background", (255.0,) * 3), dtype=np.float64)
            vm = d.get("vector_mpp")
            vm = None if vm is None else float(vm)
            if v.shape != (2, 3) or m.shape != (2,) or b.shape != (3,) \
                    or not np.all(np.isfinite(v)) or not np.all(m > 0) or not np.all(b > 0) \
                    or (vm is not None and not vm > 0):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise StainError(f"malformed stain reference {d!r}: expected 'vectors' (2 x 3), "
                             "positive 'max_conc' (2), 'background' (3) and a positive "
                             "'vector_mpp' or none") from None
        return cls((tuple(v[0]), tuple(v[1])), (float(m[0]), float(m[1])),  # type: ignore[arg-type]
                   int(d.get("n_pixels", 0)), tuple(float(c) for c in b),  # type: ignore[arg-type]
                   vm)


def glass_colour(rgb: np.ndarray) -> np.ndarray:
    """Colour of the bare glass ``(3,)``: the per-channel median of the 2 % brightest pixels.

    Robust to noise and compression outliers; where an image holds no glass it
    is the palest tissue (then references compare pale tissue with pale tissue).
    """
    a = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    bright = a.sum(axis=1)
    top = a[bright >= np.percentile(bright, 98.0)]
    return np.clip(np.median(top, axis=0), 128.0, 255.0)


def _pixels(images: Iterable[np.ndarray]) -> np.ndarray:
    """``(n, 3)`` float64 pixels of ``images``, pure black (zero padding) dropped."""
    pix = [np.asarray(im).reshape(-1, 3) for im in images]
    if not pix:
        return np.zeros((0, 3))
    a = np.concatenate(pix)
    return a[a.any(axis=1)].astype(np.float64)


def _stained(rgb: np.ndarray, glass: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Glass-balanced stained pixels (|OD| > :data:`BETA`), at most :data:`MAX_PIXELS`."""
    if len(rgb) > 2 * MAX_PIXELS:  # thin large inputs (level-0 patches) before per-pixel work
        rgb = rgb[rng.integers(0, len(rgb), 2 * MAX_PIXELS)]
    rgb = rgb * (255.0 / glass)  # white-balanced: glass at 255
    rgb = rgb[np.linalg.norm(optical_density(rgb), axis=1) > BETA]
    if len(rgb) > MAX_PIXELS:
        rgb = rgb[rng.choice(len(rgb), MAX_PIXELS, replace=False)]
    return rgb


def measure_reference(images: Iterable[np.ndarray], *, seed: int = 0,
                      vector_images: Iterable[np.ndarray] | None = None,
                      vector_mpp: float | None = None) -> StainReference:
    """The stain reference of a set of RGB images (their stained pixels pooled).

    Parameters
    ----------
    images : iterable of numpy.ndarray
        ``(..., 3)`` uint8 RGB images at the resolution the map is applied at (e.g.
        training tiles at the model's target mpp): the glass colour and the
        concentration maxima are read on them, and the vectors too unless
        ``vector_images`` are given. Pure black pixels (padding) are ignored.
    seed : int
        Seeds the subsample when there are more than 400,000 stained pixels.
    vector_images : iterable of numpy.ndarray, optional
        Full-resolution patches of the same tissue (:func:`full_resolution_patches`)
        to read the stain vectors on, white-balanced by the glass colour of
        ``images``. When they hold too few stained pixels the vectors are read on
        ``images`` and ``vector_mpp`` is None.
    vector_mpp : float, optional
        µm/px of ``vector_images`` (recorded).

    Raises
    ------
    StainError
        Too few stained pixels, or colours that are not two stains.
    """
    rgb = _pixels(images)
    if not len(rgb):
        raise StainError("no images (or only black padding) to measure a stain reference on")
    glass = glass_colour(rgb)
    rng = np.random.default_rng(seed)
    rgb = _stained(rgb, glass, rng)
    vec = None
    if vector_images is not None:
        try:
            vec = macenko_vectors(_stained(_pixels(vector_images), glass, rng), beta=BETA)
        except StainError:  # too little stain in the patches: read them on ``images``
            pass
    if vec is None:
        vec, vector_mpp = macenko_vectors(rgb, beta=BETA), None
    conc = separate(rgb, vec).astype(np.float64)
    mx = np.percentile(conc, 99.0, axis=0)
    if np.any(mx <= 0):
        raise StainError("one stain is absent from the images; no stain reference can be made")
    return StainReference((tuple(vec[0]), tuple(vec[1])),  # type: ignore[arg-type]
                          (float(mx[0]), float(mx[1])), len(rgb),
                          tuple(float(c) for c in glass),  # type: ignore[arg-type]
                          None if vector_mpp is None else float(vector_mpp))


def full_resolution_patches(slide, boxes: Iterable[tuple[float, float, float, float]], *,
                            size: int = VECTOR_PATCH) -> list[np.ndarray]:
    """Level-0 patches centred in level-0 ``boxes`` (``(x, y, w, h)``), for the stain vectors.

    Parameters
    ----------
    slide : magnipath.slide.Slide
        An open slide.
    boxes : iterable of (float, float, float, float)
        Level-0 ``(x, y, width, height)`` (e.g. the target boxes of windows or tiles).
    size : int
        Patch side in level-0 pixels (smaller when a box is).

    Returns
    -------
    list of numpy.ndarray
        ``(s, s, 3)`` uint8, zero outside the slide.
    """
    out = []
    for x, y, w, h in boxes:
        side = max(1, int(min(size, w, h)))
        out.append(slide.read_level(0, round(y + h / 2 - side / 2), round(x + w / 2 - side / 2),
                                    side, side))
    return out


def _basis(vectors: np.ndarray) -> np.ndarray:
    """``(3, 3)``: the two stain vectors and the unit residual direction normal to them."""
    r = np.cross(vectors[0], vectors[1])
    return np.vstack([vectors, r / np.linalg.norm(r)])


class StainNormaliser:
    """Maps images from a ``source`` stain to a ``target`` stain (one fixed linear map in OD).

    The source is white-balanced by its glass colour and its optical density split
    into haematoxylin, eosin and the residual that neither explains (the basis of the
    two vectors and their normal); the stain concentrations are scaled by
    ``target.max_conc / source.max_conc`` and everything is rendered with the target's
    vectors and normal, then ``I = glass_target * exp(-OD) - 1`` per channel. The
    residual is carried over, so a slide already in the target stain is left as it is
    (up to rounding). Pure black pixels (zero padding outside a slide) stay black.
    """

    def __init__(self, source: StainReference, target: StainReference) -> None:
        self.source, self.target = source, target
        src = np.asarray(source.vectors, dtype=np.float64)
        tgt = np.asarray(target.vectors, dtype=np.float64)
        ratio = np.asarray(target.max_conc) / np.asarray(source.max_conc)
        # OD (.., 3) -> OD' (.., 3) in one matrix: inv(B_src) @ diag(ratio, 1) @ B_tgt
        self.matrix = (np.linalg.inv(_basis(src)) * np.r_[ratio, 1.0][None, :]) @ _basis(tgt)
        v = np.arange(256, dtype=np.float64)[:, None] * (255.0 / np.asarray(source.background))
        self._od = np.maximum(-np.log((v + 1.0) / 255.0), 0.0).astype(np.float32)  # (256, 3)
        self._glass = np.asarray(target.background, dtype=np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(..., 3)`` uint8 RGB in the source stain -> uint8 RGB in the target stain."""
        a = np.asarray(rgb)
        od = np.stack([self._od[a[..., c], c] for c in range(3)], axis=-1)
        out = od @ self.matrix.astype(np.float32)
        np.maximum(out, 0.0, out=out)
        res = np.clip(np.rint(self._glass * np.exp(-out) - 1.0), 0, 255).astype(np.uint8)
        res[(a == 0).all(axis=-1)] = 0
        return res
