"""Background textures of each class as stain optical densities (before nuclei).

Everything is a function of absolute level-0 coordinates (see ``_noise``):
stroma as wavy eosinophilic collagen bundles with pale clefts, carcinoma and
benign epithelium as purple-pink cytoplasm, TLS as a bluish cell-dense matrix
(paler germinal centres), necrosis as pale blotchy pink, adipose as large empty
polygonal cells (a Voronoi tessellation) with thin pink membranes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magnipath.rasterize import rasterize
from magnipath.synth._noise import (
    fbm_grid,
    hash2,
    hash_more,
    mix_key,
    to_unit,
    tri_wave,
    value_noise_grid,
    value_noise_points,
)

#                       Bg    Stroma Carc  Benign TLS   Necro Adipose
BASE_H = np.array([0.0, 0.04, 0.10, 0.09, 0.10, 0.07, 0.01], np.float32)
BASE_E = np.array([0.0, 0.08, 0.40, 0.30, 0.18, 0.24, 0.02], np.float32)


@dataclass
class Grid:
    """The output pixel grid of a region.

    ``xs``/``ys`` are the level-0 coordinates of the pixel centres, ``xu``/``yu``
    the same in µm, ``ix``/``iy`` the level-0 pixel each centre falls in.
    """

    x0: float
    y0: float
    d: float
    h: int
    w: int
    mpp0: float

    def __post_init__(self) -> None:
        self.xs = self.x0 + (np.arange(self.w) + 0.5) * self.d
        self.ys = self.y0 + (np.arange(self.h) + 0.5) * self.d
        self.xu = self.xs * self.mpp0
        self.yu = self.ys * self.mpp0
        self.ix = np.floor(self.xs).astype(np.int64)
        self.iy = np.floor(self.ys).astype(np.int64)

    @property
    def um_per_px(self) -> float:
        return self.mpp0 * self.d

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x0 + self.w * self.d, self.y0 + self.h * self.d)


class Fibres:
    """Wavy collagen fibres: parallel bands bent by a strong domain warp (µm coordinates).

    The fibre phase is ``(x cos t + y sin t) / wavelength + warp_amp * warp(x, y)``;
    the warp turns the bands by up to ~40 degrees over tens of µm.
    """

    wavelength = 5.5
    warp_amp = 6.0
    warp_scale = 70.0

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xF1B])
        t = rng.uniform(0, np.pi)
        self.c, self.s = np.cos(t), np.sin(t)
        self.kw = mix_key(seed, 41)
        self.kg = mix_key(seed, 43)

    def warp_points(self, xu: np.ndarray, yu: np.ndarray) -> np.ndarray:
        return (value_noise_points(xu, yu, self.warp_scale, self.kw)
                + 0.5 * value_noise_points(xu, yu, self.warp_scale / 2, mix_key(self.kw, 1))) / 1.5

    def direction_points(self, xu: np.ndarray, yu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vector along the fibres at points (µm)."""
        e = 1.0
        gx = (self.warp_points(xu + e, yu) - self.warp_points(xu - e, yu)) / (2 * e)
        gy = (self.warp_points(xu, yu + e) - self.warp_points(xu, yu - e)) / (2 * e)
        c = self.c / self.wavelength + self.warp_amp * gx
        s = self.s / self.wavelength + self.warp_amp * gy
        norm = np.sqrt(c * c + s * s) + 1e-12
        return (-s / norm).astype(np.float32), (c / norm).astype(np.float32)

    def grid(self, g: Grid) -> np.ndarray:
        """Fibre density in [0, 1] on the grid (1 = collagen, 0 = cleft)."""
        warp = fbm_grid(g.xu, g.yu, self.warp_scale, self.kw, octaves=2)
        warp *= np.float32(self.warp_amp)
        px = np.mod(g.xu * (self.c / self.wavelength), 1.0).astype(np.float32)
        py = np.mod(g.yu * (self.s / self.wavelength), 1.0).astype(np.float32)
        warp += py[:, None]
        warp += px[None, :]
        wave = tri_wave(warp)
        fine = tri_wave(warp * np.float32(3.7))
        # clefts: the troughs of the wave, only where a patchy gate opens them
        gate = value_noise_grid(g.xu, g.yu, 16.0, self.kg)
        gate = np.clip(gate * 1.6 + 0.2, 0.0, 1.0)
        cleft = np.clip(1.0 - wave * 4.0, 0.0, 1.0) * gate
        return np.clip(0.82 + 0.18 * fine - cleft, 0.0, 1.0)


def adipose_membranes(seed: int, g: Grid, mask: np.ndarray) -> np.ndarray:
    """Membrane strength in [0, 1] where ``mask``; adipocytes ~50-100 µm (Voronoi cells).

    Seeds sit one per 75 µm lattice cell; the pixels of one cell share its 3x3
    neighbouring seeds, so each cell's block of pixels is done with scalar seeds.
    """
    out = np.zeros((g.h, g.w), np.float32)
    rr, cc = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rr.size == 0:
        return out
    r0, r1, c0, c1 = rr[0], rr[-1] + 1, cc[0], cc[-1] + 1
    cell = 75.0
    key = mix_key(seed, 51)
    u, v = g.xu[c0:c1] / cell, g.yu[r0:r1] / cell
    ci, cj = np.floor(u), np.floor(v)
    fx = (u - ci).astype(np.float32)  # position inside the own cell, cell units
    fy = (v - cj).astype(np.float32)
    ci, cj = ci.astype(np.int64), cj.astype(np.int64)
    li = np.arange(ci[0] - 1, ci[-1] + 2)
    lj = np.arange(cj[0] - 1, cj[-1] + 2)
    hh = hash2(li[None, :], lj[:, None], key)
    ox = (0.15 + 0.7 * to_unit(hash_more(hh, 0))).astype(np.float32)  # seed inside its cell
    oy = (0.15 + 0.7 * to_unit(hash_more(hh, 1))).astype(np.float32)
    width = max(0.9, 0.6 * g.um_per_px)
    for j in np.unique(cj):
        rs = np.flatnonzero(cj == j)
        yy = fy[rs[0]:rs[-1] + 1, None]
        for i in np.unique(ci):
            cs = np.flatnonzero(ci == i)
            xx = fx[None, cs[0]:cs[-1] + 1]
            a0, b0 = j - lj[0], i - li[0]
            d1 = d2 = None
            for dj in (-1, 0, 1):
                for di in (-1, 0, 1):
                    qx = np.float32(di) + ox[a0 + dj, b0 + di]
                    qy = np.float32(dj) + oy[a0 + dj, b0 + di]
                    dd = (xx - qx) ** 2 + (yy - qy) ** 2
                    if d1 is None:
                        d1, p1x, p1y = dd, np.full_like(dd, qx), np.full_like(dd, qy)
                        d2, p2x, p2y = np.full_like(dd, np.inf), p1x.copy(), p1y.copy()
                        continue
                    first = dd < d1
                    second = ~first & (dd < d2)
                    d2 = np.where(first, d1, np.where(second, dd, d2))
                    p2x = np.where(first, p1x, np.where(second, qx, p2x))
                    p2y = np.where(first, p1y, np.where(second, qy, p2y))
                    d1 = np.where(first, dd, d1)
                    p1x = np.where(first, qx, p1x)
                    p1y = np.where(first, qy, p1y)
            sep = np.sqrt((p1x - p2x) ** 2 + (p1y - p2y) ** 2) + np.float32(1e-6)
            edge = (d2 - d1) / (2 * sep) * np.float32(cell)  # distance to the bisector, µm
            out[r0 + rs[0]:r0 + rs[-1] + 1, c0 + cs[0]:c0 + cs[-1] + 1] = np.clip(
                1.0 - edge / width, 0.0, 1.0)
    out *= mask
    return out


def base_od(layout, g: Grid, labels: np.ndarray, present: np.ndarray,
            fibres: Fibres) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin optical densities ``(y, x)`` of the class textures."""
    od_h = BASE_H[labels]
    od_e = BASE_E[labels]
    if not present[1:].any():
        return od_h, od_e
    seed = layout.seed
    n_fine = value_noise_grid(g.xu, g.yu, 8.0, mix_key(seed, 61))
    n_mid = value_noise_grid(g.xu, g.yu, 25.0, mix_key(seed, 62))

    def m(k: int) -> np.ndarray:
        return (labels == k).astype(np.float32)

    if present[1]:  # stroma: collagen bundles with clefts, patchy density
        f = fibres.grid(g)
        mk = m(1)
        od_e += mk * (0.40 * f * (0.85 + 0.15 * n_mid))
        od_h += mk * (0.012 * n_fine)
    if present[2]:
        mk = m(2)
        od_e += mk * (0.06 * n_fine + 0.04 * n_mid)
        od_h += mk * (0.03 * n_mid)
    if present[3]:
        od_e += m(3) * (0.05 * n_fine)
    if present[4] and layout.germinal_centres:
        gc = rasterize([(p, 1) for p in layout.germinal_centres], (g.x0, g.y0, 0, 0), g.d,
                       (g.h, g.w), fill=0).astype(np.float32) * m(4)
        od_e += gc * 0.08
        od_h -= gc * 0.03
    if present[5]:
        mk = m(5)
        od_e += mk * (0.10 * n_mid + 0.04 * n_fine)
        od_h += mk * (0.04 * np.maximum(n_fine, 0.0))
    if present[6]:
        mem = adipose_membranes(seed, g, labels == 6)
        od_e += mem * 0.5
        od_h += mem * 0.04
    # slow variation of section thickness / staining across the slide
    slow = 1.0 + 0.12 * value_noise_grid(g.xu, g.yu, 300.0, mix_key(seed, 63))
    od_h *= slow
    od_e *= slow
    return od_h, od_e
