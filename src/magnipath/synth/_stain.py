"""Beer–Lambert H&E stain model: optical densities of haematoxylin and eosin -> RGB.

``I_c = 255 * exp(-(OD_bg_c + OD_H * h_c + OD_E * e_c))`` per channel ``c``,
with unit stain vectors ``h`` (haematoxylin, blue-purple) and ``e`` (eosin,
pink). The exponential goes through a lookup table over quantised optical
density (steps of 1/512), which is fast and bit-exact whatever the array shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magnipath.synth._scanner import Scanner

H_VECTOR = (0.65, 0.70, 0.29)
"""Haematoxylin optical density per unit stain, (r, g, b), before normalisation."""
E_VECTOR = (0.07, 0.99, 0.11)
"""Eosin optical density per unit stain, (r, g, b), before normalisation."""

_Q = 512
_QSCALE = 200.0  # quantisation steps per unit optical density (max OD 2.555)


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


@dataclass(frozen=True)
class StainModel:
    """Stain vectors and the optical density of bare glass.

    Attributes
    ----------
    h, e : (float, float, float)
        Unit optical-density vectors (r, g, b) of haematoxylin and eosin.
    glass : (float, float, float)
        Optical density of the empty slide per channel (0 = pure white).
    h_scale, e_scale : float
        Multipliers of the haematoxylin and eosin optical densities (staining
        intensity; 1 = as drawn).
    brightness : float
        Illumination relative to a white-balanced scan (``I = 255 * brightness *
        exp(-OD)``, clipped at 255).
    """

    h: tuple[float, float, float] = tuple(_unit(H_VECTOR))  # type: ignore[assignment]
    e: tuple[float, float, float] = tuple(_unit(E_VECTOR))  # type: ignore[assignment]
    glass: tuple[float, float, float] = (0.025, 0.03, 0.02)
    h_scale: float = 1.0
    e_scale: float = 1.0
    brightness: float = 1.0

    @classmethod
    def for_seed(cls, seed: int, scanner: Scanner | None = None) -> StainModel:
        """A slide-to-slide variation (a few per cent) of the stain vectors, from ``seed``.

        The variation is drawn around the standard vectors, or around the vectors
        of ``scanner`` when it gives them; its intensities, illumination and glass
        tint are applied on top. The random draws do not depend on ``scanner``.
        """
        sc = scanner or Scanner()
        rng = np.random.default_rng([seed, 0x57A1])
        h0 = np.asarray(sc.h_vector or H_VECTOR, dtype=np.float64)
        e0 = np.asarray(sc.e_vector or E_VECTOR, dtype=np.float64)
        h = _unit(tuple(h0 * rng.uniform(0.94, 1.06, 3)))  # type: ignore[arg-type]
        e = _unit(tuple(e0 * rng.uniform(0.94, 1.06, 3)))  # type: ignore[arg-type]
        g = rng.uniform(0.015, 0.04, 3)
        if sc.glass is not None:
            g = np.asarray(sc.glass, dtype=np.float64)
        return cls(tuple(float(v) for v in h), tuple(float(v) for v in e),  # type: ignore[arg-type]
                   tuple(float(v) for v in g), float(sc.h_scale),  # type: ignore[arg-type]
                   float(sc.e_scale), float(sc.brightness))

    def lut(self) -> np.ndarray:
        """Table of RGB (packed as RGBA uint32) of quantised ``(OD_H, OD_E)`` (steps 1/200)."""
        q = (np.arange(_Q) / _QSCALE)
        h = np.asarray(self.h) * self.h_scale
        e = np.asarray(self.e) * self.e_scale
        od = (q[:, None, None] * h[None, None, :]
              + q[None, :, None] * e[None, None, :] + np.asarray(self.glass))
        rgb = np.rint(np.minimum(255.0 * self.brightness * np.exp(-od), 255.0))
        rgb = rgb.astype(np.uint8).reshape(_Q * _Q, 3)
        rgba = np.zeros((_Q * _Q, 4), np.uint8)
        rgba[:, :3] = rgb
        return rgba.view(np.uint32).ravel()

    def to_rgb(self, od_h: np.ndarray, od_e: np.ndarray, noise: np.ndarray | None = None,
               lut: np.ndarray | None = None) -> np.ndarray:
        """RGB ``(y, x, 3)`` uint8 from stain optical densities ``(y, x)``.

        Parameters
        ----------
        od_h, od_e : numpy.ndarray
            Optical densities (float32, >= 0) of haematoxylin and eosin; quantised
            to steps of 1/200 after adding ``noise`` (which dithers the steps).
        noise : numpy.ndarray, optional
            ``(y, x)`` optical-density noise added to both stains.
        lut : numpy.ndarray, optional
            The table of :meth:`lut` (pass it to avoid rebuilding it).
        """
        if lut is None:
            lut = self.lut()
        qh = od_h * np.float32(_QSCALE)
        qe = od_e * np.float32(_QSCALE)
        if noise is not None:
            qh += noise
            qe += noise
        qh += np.float32(0.5)
        qe += np.float32(0.5)
        np.clip(qh, 0, _Q - 1, out=qh)
        np.clip(qe, 0, _Q - 1, out=qe)
        idx = qh.astype(np.int32)
        idx *= _Q
        idx += qe.astype(np.int32)
        rgba = lut.take(idx).view(np.uint8).reshape(*idx.shape, 4)
        return np.ascontiguousarray(rgba[..., :3])

    def separate(self, rgb: np.ndarray) -> np.ndarray:
        """Colour deconvolution: ``(..., 3)`` uint8 RGB -> ``(..., 2)`` (OD_H, OD_E).

        Least-squares inverse of :meth:`to_rgb` (glass subtracted), for tests and
        diagnostics.
        """
        od = (-np.log(np.maximum(rgb.astype(np.float64), 1.0) / (255.0 * self.brightness))
              - np.asarray(self.glass))
        m = np.stack([np.asarray(self.h) * self.h_scale, np.asarray(self.e) * self.e_scale],
                     axis=1)  # (3, 2)
        return od @ np.linalg.pinv(m).T
