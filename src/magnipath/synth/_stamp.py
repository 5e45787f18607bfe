"""Drawing nuclei into optical-density canvases (vectorised over nuclei).

A nucleus is an ellipse (semi-axes ``a``, ``b`` in µm, angle ``theta``) whose
radius is modulated by 2- and 3-fold harmonics (pleomorphism). Solid nuclei are
the projection of a sectioned 3-D ellipsoid of centrally dense chromatin through a
4 µm section (:func:`section_profile`): densest in the centre, with a soft rim, as
real nuclei look to a scale-space blob detector. Each pixel's
value is computed from its absolute level-0 centre and the nucleus parameters
with IEEE arithmetic only, and contributions are summed in the nuclei's global
order, so a pixel gets the same value whatever region is rendered. Nuclei paint
only pixels of their own class (crisp class boundaries).
"""

from __future__ import annotations

import numpy as np

from magnipath.synth._noise import hash_more, to_unit
from magnipath.synth._nuclei import Nuclei, cos_sin_turns
from magnipath.synth._textures import Grid


def _groups(r: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Batch nuclei by stamp half-size (rounded up to a multiple of 4 px)."""
    rq = (np.ceil(r / 4.0) * 4).astype(np.int64)
    return [(int(v), np.flatnonzero(rq == v)) for v in np.unique(rq)]


class Canvas:
    """Accumulators of haematoxylin/eosin OD for a region, with its labels and noise.

    Contributions are collected in drawing order and summed once by :meth:`totals`
    (``numpy.bincount`` adds them in that order, so the sums are reproducible).
    """

    def __init__(self, g: Grid, labels: np.ndarray, noise: np.ndarray) -> None:
        self.g = g
        self.labels = labels.ravel()
        self.noise = noise.ravel()
        self._flat: list[np.ndarray] = []
        self._h: list[np.ndarray] = []
        self._e: list[np.ndarray] = []

    def add(self, flat: np.ndarray, vh: np.ndarray, ve: np.ndarray) -> None:
        self._flat.append(flat)
        self._h.append(vh)
        self._e.append(ve)

    def totals(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(od_h, od_e)`` float32 ``(y, x)`` sums of everything added, or ``None``."""
        if not self._flat:
            return None
        n = self.g.h * self.g.w
        flat = np.concatenate(self._flat)
        h = np.bincount(flat, np.concatenate(self._h), minlength=n)
        e = np.bincount(flat, np.concatenate(self._e), minlength=n)
        shape = (self.g.h, self.g.w)
        return h.astype(np.float32).reshape(shape), e.astype(np.float32).reshape(shape)


def _frames(cv: Canvas, nuc: Nuclei, idx: np.ndarray, r: int, reach_um: np.ndarray):
    """Local coordinates (µm, nucleus frame) of the pixels around each nucleus in ``idx``.

    Returns ``(u, v, flat)`` for the pixels that are inside the region, inside the
    nucleus' reach and of the nucleus' class; ``u``/``v`` are float32, ``flat``
    the pixel index into the canvas, and ``which`` the nucleus of each entry.
    """
    g = cv.g
    size = 2 * r + 2
    fc = (nuc.x[idx] - g.x0) / g.d - 0.5
    fr = (nuc.y[idx] - g.y0) / g.d - 0.5
    c0 = np.floor(fc).astype(np.int64) - r
    r0 = np.floor(fr).astype(np.int64) - r
    off = np.arange(size)
    cols = c0[:, None] + off[None, :]
    rows = r0[:, None] + off[None, :]
    dx = ((g.x0 + (cols + 0.5) * g.d) - nuc.x[idx][:, None]) * g.mpp0
    dy = ((g.y0 + (rows + 0.5) * g.d) - nuc.y[idx][:, None]) * g.mpp0
    dx = dx.astype(np.float32)
    dy = dy.astype(np.float32)
    ok = ((cols >= 0) & (cols < g.w))[:, None, :] & ((rows >= 0) & (rows < g.h))[:, :, None]
    reach2 = (reach_um[idx] ** 2).astype(np.float32)
    ok &= (dx[:, None, :] ** 2 + dy[:, :, None] ** 2) <= reach2[:, None, None]
    which, ri, ci = np.nonzero(ok)
    flat = rows[which, ri] * g.w + cols[which, ci]
    mine = cv.labels[flat] == nuc.label[idx][which]
    which, ri, ci, flat = which[mine], ri[mine], ci[mine], flat[mine]
    x = dx[which, ci]
    y = dy[which, ri]
    ct = nuc.ct[idx][which]
    st = nuc.st[idx][which]
    u = x * ct + y * st
    v = y * ct - x * st
    return u, v, flat, idx[which]


def _harmonics(nuc: Nuclei, amp: tuple[float, float]) -> np.ndarray:
    """Per nucleus ``(p2, cos, sin, p3, cos, sin)`` of the 2- and 3-fold radius terms."""
    h = nuc.h2
    cp2, sp2 = cos_sin_turns(to_unit(hash_more(h, 9)))
    cp3, sp3 = cos_sin_turns(to_unit(hash_more(h, 10)))
    p2 = (amp[0] * to_unit(hash_more(h, 7))).astype(np.float32)
    p3 = (amp[1] * to_unit(hash_more(h, 8))).astype(np.float32)
    return np.stack([p2, cp2, sp2, p3, cp3, sp3]).astype(np.float32)


def _shape_radius(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray,
                  hm: np.ndarray | None) -> np.ndarray:
    """Normalised elliptical radius with 2- and 3-fold harmonic irregularity."""
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    if hm is None:
        return rho
    r = np.sqrt(u * u + v * v) + np.float32(1e-6)
    c1, s1 = u / r, v / r
    c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
    c3, s3 = c1 * (4 * c1 * c1 - 3), s1 * (3 - 4 * s1 * s1)
    mod = 1 + hm[0] * (c2 * hm[1] - s2 * hm[2]) + hm[3] * (c3 * hm[4] - s3 * hm[5])
    return rho / mod


SECTION_UM = 4.0
"""Thickness of the tissue section in µm (routine paraffin sections are cut at 3-5 µm)."""

CUT_SPREAD = 0.25
"""How far outside the section a drawn nucleus' centre may lie, in units of its depth
semi-axis: a nucleus is seen when its centre is within ``SECTION_UM / 2 + CUT_SPREAD * c``
of the section's mid-plane (``c`` its depth semi-axis)."""


def section_cuts(nuc: Nuclei) -> tuple[np.ndarray, np.ndarray]:
    """Where the section cuts each nucleus: ``(zeta0, tau)`` float32 per nucleus.

    A nucleus is an ellipsoid with in-plane semi-axes ``a``, ``b`` and depth semi-axis
    ``c = b`` (µm). ``zeta0`` is the offset of the section's mid-plane from the
    nucleus' centre and ``tau`` the section thickness, both in units of ``c``. The
    offset is drawn uniformly from ``|z0| <= SECTION_UM / 2 + CUT_SPREAD * c`` by a hash
    of the nucleus (a deterministic function of the seed, whatever tile renders it).
    """
    c = nuc.b
    half = np.float32(SECTION_UM / 2) + np.float32(CUT_SPREAD) * c
    z0 = (2.0 * to_unit(hash_more(nuc.h2, 14)) - 1.0).astype(np.float32) * half
    return (z0 / c).astype(np.float32), (np.float32(SECTION_UM) / c).astype(np.float32)


def section_profile(rho: np.ndarray, zeta0: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Projected chromatin of a sectioned nucleus, relative to a centrally cut one.

    Model: chromatin density ``1 - r^2`` inside the ellipsoid (``r`` its normalised
    3-D radius): densest in the centre, falling smoothly to zero at the nuclear
    envelope. Light crossing the section at normalised in-plane radius ``rho``
    (:func:`_shape_radius`) absorbs the integral of the density over the part of the
    chord ``|z| <= sqrt(1 - rho^2)`` that lies in the section ``[zeta0 - tau / 2,
    zeta0 + tau / 2]`` (all in units of the depth semi-axis); Beer-Lambert makes the
    optical density proportional to it. Through a whole nucleus this is
    ``4/3 (1 - rho^2)^(3/2)``: a soft rim without a hard edge. A cut off the
    nucleus' centre gives a smaller, paler profile. The result is divided by the
    value at the centre of a nucleus centred in the section, so the species'
    ``dark`` is the peak optical density of a centrally cut nucleus.
    """
    q = np.maximum(np.float32(1.0) - rho * rho, np.float32(0.0))
    hz = np.sqrt(q)
    lo = np.maximum(-hz, zeta0 - tau / 2)
    hi = np.minimum(hz, zeta0 + tau / 2)
    dens = q * (hi - lo) - (hi * hi * hi - lo * lo * lo) / 3
    m = np.minimum(np.float32(1.0), tau / 2)
    norm = 2 * m - (2.0 / 3.0) * m * m * m
    return np.where(hi > lo, dens / norm, np.float32(0.0)).astype(np.float32)


def stamp(cv: Canvas, nuc: Nuclei) -> None:
    """Add the nuclei of ``nuc`` to the canvas (profile by ``nuc.species.kind``).

    ``"vesicular"``: pale chromatin, a dark rim and a nucleolus. ``"solid"``: the
    projection of a sectioned ellipsoid of centrally dense chromatin
    (:func:`section_profile`, cut by :func:`section_cuts`), peak optical density
    ``nuc.dark``. Sizes in µm, positions in level-0 px.
    """
    if len(nuc) == 0:
        return
    g = cv.g
    sp = nuc.species
    amp = sp.harmonics
    reach_um = nuc.a * np.float32(1.0 + amp[0] + amp[1]) + np.float32(0.5 + g.um_per_px)
    soft = np.float32(max(0.35, 0.6 * g.um_per_px))  # edge width, µm (anti-aliasing)
    harm = _harmonics(nuc, amp) if max(amp) > 0 else None
    vesicular = sp.kind == "vesicular"
    if vesicular:
        hh = nuc.h2
        nx = (0.35 * (to_unit(hash_more(hh, 11)) - 0.5)).astype(np.float32) * nuc.a
        ny = (0.35 * (to_unit(hash_more(hh, 12)) - 0.5)).astype(np.float32) * nuc.b
        rn = (0.6 + 0.5 * to_unit(hash_more(hh, 13))).astype(np.float32)
    if not vesicular:
        cut, tau = section_cuts(nuc)
    for r, idx in _groups(reach_um / g.um_per_px + 1.0):
        u, v, flat, which = _frames(cv, nuc, idx, r, reach_um)
        if flat.size == 0:
            continue
        a, b = nuc.a[which], nuc.b[which]
        rho = _shape_radius(u, v, a, b, None if harm is None else harm[:, which])
        inside = np.clip((1.0 - rho) * (b / soft) + 0.5, 0.0, 1.0)
        grain = cv.noise[flat]
        dark = nuc.dark[which]
        if vesicular:
            rim = np.clip(1.0 - np.abs(rho - 0.86) / 0.16, 0.0, 1.0)
            rnw = rn[which]
            dn = np.sqrt((u - nx[which]) ** 2 + (v - ny[which]) ** 2) / rnw
            nucleolus = np.clip((1.0 - dn) * (rnw / soft) + 0.5, 0.0, 1.0) * inside
            vh = dark * inside * (0.32 + 0.2 * grain) + dark * 0.8 * rim * inside
            vh += 0.75 * nucleolus
            cv.add(flat, vh, 0.35 * nucleolus - 0.12 * inside)
        else:  # "solid": a sectioned sphere of chromatin, densest in the centre
            dens = section_profile(rho, cut[which], tau[which]) * inside
            vh = dark * dens * (1.0 + 0.12 * grain)
            cv.add(flat, vh, -0.05 * inside)


def stamp_mitoses(cv: Canvas, nuc: Nuclei) -> None:
    """Mitotic figures: dark condensed, ragged chromatin (plate, anaphase pair or clump) in a
    clear halo; ``extra['type']`` 0/1/2 picks the figure."""
    if len(nuc) == 0:
        return
    g = cv.g
    soft = np.float32(max(0.35, 0.6 * g.um_per_px))
    halo = np.float32(4.0)
    reach_um = nuc.a + halo + np.float32(g.um_per_px + 4.0)
    for r, idx in _groups(reach_um / g.um_per_px + 1.0):
        u, v, flat, which = _frames(cv, nuc, idx, r, reach_um)
        if flat.size == 0:
            continue
        a, b = nuc.a[which], nuc.b[which]
        kind = nuc.extra["type"][which]
        sep = nuc.extra["sep"][which]
        grain = cv.noise[flat]
        v1 = np.where(kind == 1, np.abs(v) - sep, v)  # anaphase: two plates
        rho = np.sqrt((u / a) ** 2 + (v1 / b) ** 2)
        # ragged outline (chromosome arms): 5- and 7-fold terms of the angle, plus grain
        r = np.sqrt(u * u + v1 * v1) + np.float32(1e-6)
        c1, s1 = u / r, v1 / r
        c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
        c4, s4 = c2 * c2 - s2 * s2, 2 * c2 * s2
        c5, c7 = c4 * c1 - s4 * s1, (c4 * c2 - s4 * s2) * c1 - (s4 * c2 + c4 * s2) * s1
        rho = rho * (1.0 + 0.2 * c5 * nuc.extra["r5"][which] + 0.15 * c7
                     + 0.1 * grain)
        inside = np.clip((1.0 - rho) * (b / soft) + 0.5, 0.0, 1.0)
        rh = np.sqrt(u * u + v * v) / (a + halo)
        clear = np.clip(1.0 - rh, 0.0, 1.0)
        vh = nuc.dark[which] * inside
        cv.add(flat, vh, -0.18 * clear)
