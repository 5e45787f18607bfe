"""Where the nuclei are: deterministic per fixed lattice cell, independent of tiling.

Each nucleus species has its own lattice (spacing in µm, anchored at the slide
origin); lattice cell ``(i, j)`` holds one candidate whose position and
attributes are hashes of ``(seed, species, i, j)``. A candidate becomes a
nucleus when the class under its centre (point-in-polygon on the ground truth,
level-0 px) accepts it. Benign ducts get a regular ring of nuclei around each
lumen, and mitotic figures sit at the layout's mitosis points. Any region asks
for the candidates of the lattice cells around it, so the same nucleus is drawn
whatever tile renders it; candidates are listed in a global order (lattice row,
then column) so that overlapping contributions add up in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from magnipath.synth._noise import (
    hash2,
    hash_more,
    mix_key,
    to_unit,
    value_noise_points,
)

LABEL = {"Background": 0, "Stroma": 1, "Carcinoma": 2, "Benign": 3, "TLS": 4,
         "Necrosis": 5, "Adipose": 6}


@dataclass(frozen=True)
class Species:
    """A kind of nucleus. Sizes in µm; ``kind`` picks the stamp profile."""

    name: str
    spacing: float
    a: tuple[float, float]          # semi-major axis range
    aspect: tuple[float, float]     # b / a range
    dark: tuple[float, float]       # haematoxylin optical density range (peak for "solid")
    kind: str                       # "solid" (a sectioned sphere of chromatin) or "vesicular"
    harmonics: tuple[float, float] = (0.03, 0.03)  # max amplitudes of the 2- and 3-fold terms


LYMPHOCYTE = Species("lymphocyte", 7.2, (2.9, 3.4), (0.85, 1.0), (1.6, 2.1), "solid")
FIBROBLAST = Species("fibroblast", 15.0, (4.5, 7.5), (0.2, 0.32), (1.05, 1.35), "solid")
CARCINOMA = Species("carcinoma", 12.5, (4.5, 7.0), (0.65, 1.0), (0.75, 1.05), "vesicular",
                    (0.12, 0.08))
CENTROBLAST = Species("centroblast", 10.5, (4.0, 5.5), (0.8, 1.0), (0.4, 0.55), "vesicular",
                      (0.05, 0.03))
DEBRIS = Species("debris", 8.0, (0.7, 2.0), (0.5, 1.0), (0.9, 1.3), "solid", (0.25, 0.2))


@dataclass
class Nuclei:
    """A batch of nuclei of one species. Positions in level-0 px, sizes in µm."""

    species: Species
    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ct: np.ndarray     # cos / sin of the major axis' direction
    st: np.ndarray
    dark: np.ndarray
    label: np.ndarray  # class label each nucleus belongs to (its pixels are clipped to it)
    h2: np.ndarray     # uint32 hashes for further attributes
    extra: dict

    def __len__(self) -> int:
        return len(self.x)


def _lattice(species: Species, key: int, box_px: tuple[float, float, float, float],
             mpp0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate centres (level-0 px) and hashes of the lattice cells overlapping ``box_px``."""
    g = species.spacing
    x0, y0, x1, y1 = box_px
    i = np.arange(int(np.floor(x0 * mpp0 / g)), int(np.floor(x1 * mpp0 / g)) + 1)
    j = np.arange(int(np.floor(y0 * mpp0 / g)), int(np.floor(y1 * mpp0 / g)) + 1)
    h = hash2(i[None, :], j[:, None], key).ravel()  # row-major: a global order
    ii = np.broadcast_to(i[None, :], (len(j), len(i))).ravel()
    jj = np.broadcast_to(j[:, None], (len(j), len(i))).ravel()
    ux = to_unit(hash_more(h, 0))
    uy = to_unit(hash_more(h, 1))
    x = (ii + 0.1 + 0.8 * ux) * (g / mpp0)
    y = (jj + 0.1 + 0.8 * uy) * (g / mpp0)
    return x, y, h


def _attributes(species: Species, x, y, h, label) -> Nuclei:
    u = [to_unit(hash_more(h, k)).astype(np.float32) for k in range(3, 7)]
    a = species.a[0] + (species.a[1] - species.a[0]) * u[0]
    b = a * (species.aspect[0] + (species.aspect[1] - species.aspect[0]) * u[1])
    ct, st = cos_sin_turns(u[2] * 0.5)
    dark = species.dark[0] + (species.dark[1] - species.dark[0]) * u[3]
    return Nuclei(species, x, y, a.astype(np.float32), b.astype(np.float32), ct, st,
                  dark.astype(np.float32), np.full(len(x), label, np.int16), h, {})


def lattice_nuclei(layout, species: Species, rules: list[tuple[str, object]],
                   box_px: tuple[float, float, float, float]) -> Nuclei:
    """Nuclei of ``species`` around ``box_px`` (x0, y0, x1, y1 level-0 px).

    ``rules`` lists ``(class name, acceptance)`` where acceptance is a float or a
    function ``(x, y) -> probability`` (level-0 px arrays).
    """
    key = mix_key(layout.seed, sum(map(ord, species.name)), 11)
    x, y, h = _lattice(species, key, box_px, layout.mpp)
    acc = to_unit(hash_more(h, 2))
    keep = np.zeros(len(x), dtype=bool)
    lab = np.zeros(len(x), dtype=np.int16)
    pmax = max(1.0 if callable(p) else float(p) for _, p in rules)
    cand = np.flatnonzero(acc < pmax)
    for name, p in rules:
        if cand.size == 0:
            break
        inside = shapely.contains_xy(layout.geometry_of(name), x[cand], y[cand])
        idx = cand[inside]
        prob = p(x[idx], y[idx]) if callable(p) else p
        ok = acc[idx] < prob
        keep[idx[ok]] = True
        lab[idx] = LABEL[name]
        cand = cand[~inside]
    sel = np.flatnonzero(keep)
    nuc = _attributes(species, x[sel], y[sel], h[sel], 0)
    nuc.label = lab[sel]
    return nuc


def stroma_lymph_prob(layout):
    """Acceptance of lymphocyte candidates in stroma: sparse, with denser infiltrate patches."""
    key = mix_key(layout.seed, 21)
    mpp0 = layout.mpp

    def p(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = value_noise_points(x * mpp0, y * mpp0, 120.0, key)
        dense = np.clip((n - 0.4) / 0.6, 0.0, 1.0) ** 1.2
        return 0.02 + 0.8 * dense  # the densest patches look like TLS up close

    return p


def fibre_directions(layout, x: np.ndarray, y: np.ndarray,
                     fib) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction (cos, sin) of the stroma fibres at level-0 points (spindle nuclei)."""
    return fib.direction_points(x * layout.mpp, y * layout.mpp)


def duct_nuclei(layout, duct) -> tuple[Nuclei, Nuclei]:
    """Luminal ring and myoepithelial nuclei of one benign duct (cached per duct)."""
    key = ("ductnuc", duct.index)
    if key in layout._cache:
        return layout._cache[key]
    px = 1.0 / layout.mpp
    out = []
    for ring_geom, spacing, a, b, dark, radial, k in (  # dark: peak haematoxylin OD
            (duct.lumen.buffer(4.5 * px, quad_segs=4), 7.0, 3.3, 2.5, 1.1, True, 1),
            (duct.outer.buffer(-2.0 * px, quad_segs=4), 13.0, 4.2, 1.2, 1.3, False, 2)):
        if ring_geom.is_empty or ring_geom.geom_type != "Polygon":
            out.append(_empty(LYMPHOCYTE))
            continue
        line = ring_geom.exterior
        n = max(int(line.length / (spacing * px)), 3)
        h = hash2(np.arange(n), np.full(n, duct.index), mix_key(layout.seed, 31, k))
        s = (np.arange(n) + 0.5 + 0.3 * (to_unit(h) - 0.5)) * (line.length / n)
        p = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
        q = shapely.get_coordinates(shapely.line_interpolate_point(line, (s + 2.0) % line.length))
        tx, ty = q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]
        norm = np.sqrt(tx * tx + ty * ty) + 1e-12
        ct, st = (-ty / norm, tx / norm) if radial else (tx / norm, ty / norm)
        u = to_unit(hash_more(h, 5)).astype(np.float32)
        sp = Species("duct", spacing, (a, a), (b / a, b / a), (dark, dark), "solid")
        out.append(Nuclei(sp, p[:, 0], p[:, 1], np.full(n, a, np.float32) * (0.9 + 0.2 * u),
                          np.full(n, b, np.float32), ct.astype(np.float32),
                          st.astype(np.float32),
                          np.full(n, dark, np.float32) * (0.9 + 0.2 * u),
                          np.full(n, LABEL["Benign"], np.int16), h, {}))
    res = (out[0], out[1])
    layout._cache[key] = res
    return res


_TRIG_N = 1 << 16
_TRIG = np.exp(2j * np.pi * np.arange(_TRIG_N) / _TRIG_N)
_COS = _TRIG.real.astype(np.float32)
_SIN = _TRIG.imag.astype(np.float32)


def cos_sin_turns(turns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of ``2 pi turns`` from a table (bit-exact whatever the array length)."""
    k = np.rint(np.asarray(turns, dtype=np.float64) * _TRIG_N).astype(np.int64) % _TRIG_N
    return _COS[k], _SIN[k]


def mitosis_nuclei(layout, box_px: tuple[float, float, float, float]) -> Nuclei:
    """The layout's mitotic figures near ``box_px`` (x0, y0, x1, y1 level-0 px)."""
    key = ("mitoses",)
    if key not in layout._cache:
        xy = np.array([[p.x, p.y] for p in layout.mitoses]).reshape(-1, 2)
        n = len(xy)
        h = hash2(np.arange(n), np.zeros(n, np.int64), mix_key(layout.seed, 71))
        u = [to_unit(hash_more(h, k)) for k in range(6)]
        kind = np.minimum((u[0] * 3).astype(np.int64), 2)
        a = np.where(kind == 2, 3.2 + 1.0 * u[1], np.where(kind == 1, 4.0 + 1.5 * u[1],
                                                            4.5 + 1.5 * u[1]))
        b = np.where(kind == 2, a * (0.85 + 0.15 * u[2]),
                     np.where(kind == 1, 1.2 + 0.5 * u[2], 1.5 + 0.7 * u[2]))
        ct, st = cos_sin_turns(u[3] * 0.5)
        sp = Species("mitosis", 0.0, (3.2, 6.0), (0.2, 1.0), (1.5, 1.9), "mitosis")
        layout._cache[key] = Nuclei(
            sp, xy[:, 0], xy[:, 1], a.astype(np.float32), b.astype(np.float32), ct, st,
            (1.5 + 0.4 * u[4]).astype(np.float32), np.full(n, LABEL["Carcinoma"], np.int16), h,
            {"type": kind, "sep": (2.5 + 1.3 * u[5]).astype(np.float32),
             "r5": np.where(u[2] < 0.5, -1.0, 1.0).astype(np.float32)})
    nuc = layout._cache[key]
    x0, y0, x1, y1 = box_px
    sel = np.flatnonzero((nuc.x >= x0) & (nuc.x <= x1) & (nuc.y >= y0) & (nuc.y <= y1))
    return subset(nuc, sel)


def subset(nuc: Nuclei, sel: np.ndarray) -> Nuclei:
    """The nuclei ``sel`` (indices, in order) of a batch."""
    return Nuclei(nuc.species, nuc.x[sel], nuc.y[sel], nuc.a[sel], nuc.b[sel], nuc.ct[sel],
                  nuc.st[sel], nuc.dark[sel], nuc.label[sel], nuc.h2[sel],
                  {k: v[sel] for k, v in nuc.extra.items()})


def _empty(species: Species) -> Nuclei:
    z = np.zeros(0, np.float32)
    return Nuclei(species, np.zeros(0), np.zeros(0), z, z, z, z, z, np.zeros(0, np.int16),
                  np.zeros(0, np.uint32), {})


def concat(batches: list[Nuclei], species: Species) -> Nuclei:
    """One batch from several (same profile), keeping their order."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return _empty(species)
    cat = {f: np.concatenate([getattr(b, f) for b in batches])
           for f in ("x", "y", "a", "b", "ct", "st", "dark", "label", "h2")}
    return Nuclei(species, **cat, extra={})
