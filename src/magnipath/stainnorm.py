"""Stain references and slide-level stain normalisation (Macenko), for training and inference.

A :class:`StainReference` is the H&E look of a set of images: the colour of
their bare glass (median of the 2 % brightest pixels: the light the optical
densities are measured against, so a tinted background is not taken for stain), the two
stain vectors (Macenko's method over all their stained pixels) and the robust
maximum (99th percentile over stained pixels) of each stain's concentration. Training
measures one on the training tiles and stores it in the model card
(``card.normalisation["stain_reference"]``); ``magnipath infer --normalise-stain``
measures one on a sample of the slide's tissue windows and maps every window
from the slide's stain to the model's (:class:`StainNormaliser`). One fixed
mapping per slide keeps neighbouring windows consistent (no per-tile estimate).

Arrays are ``(..., 3)`` uint8 RGB; optical densities follow :mod:`magnipath.stain`
(``OD = -ln((I + 1) / 255)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from magnipath.stain import StainError, macenko_vectors, optical_density, separate

__all__ = ["StainNormaliser", "StainReference", "glass_colour", "measure_reference"]

BETA = 0.15
"""|OD| above which a pixel counts as stained (as :func:`magnipath.stain.macenko_vectors`)."""
MAX_PIXELS = 400_000


@dataclass(frozen=True)
class StainReference:
    """Stain vectors ``(2, 3)`` (H row, E row; unit OD, (r, g, b)), the 99th-percentile
    concentrations ``(2,)`` (OD units) over stained pixels, the glass colour ``(3,)``
    (0..255 RGB) and the number of stained pixels used."""

    vectors: tuple[tuple[float, float, float], tuple[float, float, float]]
    max_conc: tuple[float, float]
    n_pixels: int = 0
    background: tuple[float, float, float] = (255.0, 255.0, 255.0)

    def to_dict(self) -> dict:
        """JSON-ready dict (stored in the model card)."""
        return {"vectors": [[float(c) for c in v] for v in self.vectors],
                "max_conc": [float(c) for c in self.max_conc],
                "background": [float(c) for c in self.background],
                "n_pixels": int(self.n_pixels), "method": "macenko on glass-balanced optical "
                "density, 99th percentile of stained pixels (|OD| > 0.15)"}

    @classmethod
    def from_dict(cls, d: dict) -> StainReference:
        """Inverse of :meth:`to_dict`; :class:`StainError` when malformed."""
        try:
            v = np.asarray(d["vectors"], dtype=np.float64)
            m = np.asarray(d["max_conc"], dtype=np.float64)
            b = np.asarray(d.get("background", (255.0,) * 3), dtype=np.float64)
            if v.shape != (2, 3) or m.shape != (2,) or b.shape != (3,) \
                    or not np.all(np.isfinite(v)) or not np.all(m > 0) or not np.all(b > 0):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise StainError(f"malformed stain reference {d!r}: expected 'vectors' (2 x 3), "
                             "positive 'max_conc' (2) and 'background' (3)") from None
        return cls((tuple(v[0]), tuple(v[1])), (float(m[0]), float(m[1])),  # type: ignore[arg-type]
                   int(d.get("n_pixels", 0)), tuple(float(c) for c in b))  # type: ignore[arg-type]


def glass_colour(rgb: np.ndarray) -> np.ndarray:
    """Colour of the bare glass ``(3,)``: the per-channel median of the 2 % brightest pixels.

    Robust to noise and compression outliers; where an image holds no glass it
    is the palest tissue (then references compare pale tissue with pale tissue).
    """
    a = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    bright = a.sum(axis=1)
    top = a[bright >= np.percentile(bright, 98.0)]
    return np.clip(np.median(top, axis=0), 128.0, 255.0)


def measure_reference(images: Iterable[np.ndarray], *,
                      seed: int = 0) -> StainReference:
    """The stain reference of a set of RGB images (their stained pixels pooled).

    Parameters
    ----------
    images : iterable of numpy.ndarray
        ``(..., 3)`` uint8 RGB images (e.g. training tiles at the model's target mpp).
    seed : int
        Seeds the subsample when there are more than 400,000 stained pixels.

    Raises
    ------
    StainError
        Too few stained pixels, or colours that are not two stains.
    """
    pix = [np.asarray(im).reshape(-1, 3) for im in images]
    if not pix:
        raise StainError("no images to measure a stain reference on")
    rgb = np.concatenate(pix)
    glass = glass_colour(rgb)
    rgb = rgb.astype(np.float64) * (255.0 / glass)  # white-balanced: glass at 255
    keep = np.linalg.norm(optical_density(rgb), axis=1) > BETA
    rgb = rgb[keep]
    if len(rgb) > MAX_PIXELS:
        rgb = rgb[np.random.default_rng(seed).choice(len(rgb), MAX_PIXELS, replace=False)]
    vec = macenko_vectors(rgb, beta=BETA)
    conc = separate(rgb, vec).astype(np.float64)
    mx = np.percentile(conc, 99.0, axis=0)
    if np.any(mx <= 0):
        raise StainError("one stain is absent from the images; no stain reference can be made")
    return StainReference((tuple(vec[0]), tuple(vec[1])),  # type: ignore[arg-type]
                          (float(mx[0]), float(mx[1])), len(rgb),
                          tuple(float(c) for c in glass))  # type: ignore[arg-type]


class StainNormaliser:
    """Maps images from a ``source`` stain to a ``target`` stain (one fixed linear map in OD).

    The source is white-balanced by its glass colour, then
    ``C = separate(rgb, source.vectors) * target.max_conc / source.max_conc`` and
    ``I = glass_target * exp(-C @ target.vectors) - 1`` per channel. Pure black
    pixels (zero padding outside a slide) stay black.
    """

    def __init__(self, source: StainReference, target: StainReference) -> None:
        self.source, self.target = source, target
        src = np.asarray(source.vectors, dtype=np.float64)
        tgt = np.asarray(target.vectors, dtype=np.float64)
        ratio = np.asarray(target.max_conc) / np.asarray(source.max_conc)
        # OD (.., 3) -> OD' (.., 3) in one matrix: pinv(src) @ diag(ratio) @ tgt
        self.matrix = (np.linalg.pinv(src) * ratio[None, :]) @ tgt
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
