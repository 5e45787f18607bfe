"""Placement of tissue features (nests, TLS, lobules, adipose) and mitoses, level-0 pixels.

Sizes are drawn in µm and converted with the slide's mpp. Features are kept
strictly inside the tissue and apart from each other (bounding circles plus a
gap of stroma), so that the class partition can be built from shared rings.
Counts scale with the tissue area; slides of at least ~0.25 mm² of tissue (a
4096 x 4096 px slide at 0.25 µm/px has ~0.6 mm²) always get at least one TLS,
one carcinoma nest, one benign lobule and one adipose region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import MultiLineString, MultiPolygon, Point, Polygon

from magnipath.synth._config import SynthConfig
from magnipath.synth._shapes import GRID, Circles, blob, sample_points_in, snap

RATES_PER_MM2 = {"carcinoma": 1.6, "tls": 0.5, "lobule": 1.2, "adipose": 0.4}
"""Expected features per mm² of tissue at ``density=1``."""


@dataclass
class DuctShape:
    outer: Polygon
    lumen: Polygon


@dataclass
class FeaturePlan:
    """Feature polygons (level-0 px); ``outers`` pairs each outline with its tissue part."""

    outers: list[tuple[Polygon, int]] = field(default_factory=list)
    nests: list[tuple[Polygon, Polygon | None]] = field(default_factory=list)
    ducts: list[DuctShape] = field(default_factory=list)
    tls: list[Polygon] = field(default_factory=list)
    germinal_centres: list[Polygon] = field(default_factory=list)
    adipose: list[Polygon] = field(default_factory=list)
    mitoses: list[Point] = field(default_factory=list)


class _Placer:
    def __init__(self, rng: np.random.Generator, tissue: list[Polygon], mpp: float) -> None:
        self.rng = rng
        self.tissue = tissue
        self.union = MultiPolygon(tissue)
        self.boundary = MultiLineString([p.exterior for p in tissue])
        shapely.prepare(self.union)
        shapely.prepare(self.boundary)
        self.circles = Circles()
        self.px = 1.0 / mpp  # level-0 px per µm

    def part_of(self, x: float, y: float) -> int:
        for i, p in enumerate(self.tissue):
            if p.contains(Point(x, y)):
                return i
        return -1

    def fits(self, x: np.ndarray, y: np.ndarray, reach: float, gap: float,
             edge: float, circles: Circles | None = None) -> np.ndarray:
        """Which centres keep ``reach + edge`` from the tissue border and ``gap`` from others."""
        ok = shapely.contains_xy(self.union, x, y)
        ok &= (circles or self.circles).free(x, y, reach, gap)
        idx = np.flatnonzero(ok)
        if idx.size:
            d = shapely.distance(self.boundary, shapely.points(x[idx], y[idx]))
            ok[idx] = d >= reach + edge
        return ok

    def find(self, reach: float, gap: float, edge: float,
             tries: int = 12) -> tuple[float, float, int] | None:
        """A random centre for a feature of bounding radius ``reach`` (all level-0 px)."""
        x0, y0, x1, y1 = self.union.bounds
        for _ in range(tries):
            x = self.rng.uniform(x0, x1, 64)
            y = self.rng.uniform(y0, y1, 64)
            ok = np.flatnonzero(self.fits(x, y, reach, gap, edge))
            if ok.size:
                i = ok[0]
                return float(x[i]), float(y[i]), self.part_of(x[i], y[i])
        return None


def _carcinoma(pl: _Placer, r_um: float, plan: FeaturePlan, *, satellites: bool,
               necrosis: bool = False) -> bool:
    rng, px = pl.rng, pl.px
    rough = rng.uniform(0.18, 0.3)
    asp = rng.uniform(0.7, 1.0)
    rx, ry = r_um * px, r_um * px * asp
    c = pl.find(max(rx, ry) * (1 + rough), 30 * px, 20 * px)
    if c is None:
        return False
    x, y, part = c
    nest, reach = blob(rng, x, y, rx, ry, roughness=rough)
    pl.circles.add(x, y, reach)
    necro = None
    if (necrosis and r_um >= 90) or (r_um >= 115 and rng.random() < 0.9):
        inner = nest.buffer(-25 * px)
        rn = 0.42 * min(rx, ry)
        for _ in range(6):
            cand, _ = blob(rng, x + rng.uniform(-0.1, 0.1) * rn, y + rng.uniform(-0.1, 0.1) * rn,
                           rn, rn * rng.uniform(0.7, 1.0), roughness=0.25)
            if inner.contains(cand):
                necro = cand
                break
            rn *= 0.8
    plan.nests.append((nest, necro))
    plan.outers.append((nest, part))
    for _ in range(int(rng.integers(0, 6)) if satellites else 0):
        rs = rng.uniform(15, min(60, 0.45 * r_um)) * px
        ang = rng.uniform(0, 2 * np.pi)
        dist = reach + rs * 1.3 + rng.uniform(12, 70) * px
        sx, sy = x + dist * np.cos(ang), y + dist * np.sin(ang)
        if not pl.fits(np.array([sx]), np.array([sy]), rs * 1.3, 12 * px, 15 * px)[0]:
            continue
        sat, sreach = blob(rng, sx, sy, rs, rs * rng.uniform(0.6, 1.0), roughness=0.2)
        pl.circles.add(sx, sy, sreach)
        plan.nests.append((sat, None))
        plan.outers.append((sat, pl.part_of(sx, sy)))
    return True


def _tls(pl: _Placer, area_mm2: float, plan: FeaturePlan) -> bool:
    rng, px = pl.rng, pl.px
    r_um = float(np.sqrt(area_mm2 * 1e6 / np.pi))
    asp = rng.uniform(0.8, 1.0)
    rough = rng.uniform(0.04, 0.1)
    rx, ry = r_um / np.sqrt(asp) * px, r_um * np.sqrt(asp) * px
    c = pl.find(max(rx, ry) * (1 + rough), 35 * px, 20 * px)
    if c is None:
        return False
    x, y, part = c
    poly, reach = blob(rng, x, y, rx, ry, roughness=rough)
    pl.circles.add(x, y, reach)
    plan.tls.append(poly)
    plan.outers.append((poly, part))
    if r_um >= 130 and rng.random() < 0.6:
        inner = poly.buffer(-25 * px)
        rg = 0.45 * r_um * px
        for _ in range(4):
            gc, _ = blob(rng, x + rng.uniform(-0.15, 0.15) * rg, y + rng.uniform(-0.15, 0.15) * rg,
                         rg, rg * rng.uniform(0.75, 1.0), roughness=0.12)
            if inner.contains(gc):
                plan.germinal_centres.append(gc)
                break
            rg *= 0.85
    return True


def _adipose(pl: _Placer, r_um: float, plan: FeaturePlan) -> bool:
    rng, px = pl.rng, pl.px
    rough = rng.uniform(0.15, 0.3)
    rx, ry = r_um * px, r_um * px * rng.uniform(0.6, 1.0)
    c = pl.find(max(rx, ry) * (1 + rough), 30 * px, 15 * px)
    if c is None:
        return False
    x, y, part = c
    poly, reach = blob(rng, x, y, rx, ry, roughness=rough)
    pl.circles.add(x, y, reach)
    plan.adipose.append(poly)
    plan.outers.append((poly, part))
    return True


def _lobule(pl: _Placer, r_um: float, plan: FeaturePlan) -> bool:
    rng, px = pl.rng, pl.px
    rl = r_um * px
    c = pl.find(rl, 30 * px, 15 * px)
    if c is None:
        return False
    x, y, part = c
    local = Circles()
    n_ducts = int(rng.integers(4, 11))
    placed = 0
    for _ in range(n_ducts):
        # the epithelial bilayer of a benign duct or acinus (cuboidal-to-columnar luminal
        # cells and the flat myoepithelial layer) is about 15-20 µm thick
        wall_um = rng.uniform(14, 22)
        rd = rng.uniform(wall_um + 16, max(wall_um + 17, min(64, 0.5 * r_um))) * px
        asp = rng.uniform(0.7, 1.0)
        wall = wall_um * px
        for _ in range(20):
            ang, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.random()) * max(rl - rd * 1.12, 0)
            dx, dy = x + rad * np.cos(ang), y + rad * np.sin(ang)
            if not local.free(np.array([dx]), np.array([dy]), rd * 1.12, 10 * px)[0]:
                continue
            outer, reach = blob(rng, dx, dy, rd, rd * asp, roughness=0.08)
            lumen = outer.buffer(-wall)
            if lumen.is_empty or lumen.area < (4 * px) ** 2:
                continue
            if lumen.geom_type != "Polygon":
                lumen = max(shapely.get_parts(lumen), key=lambda p: p.area)
            lumen = snap(Polygon(lumen.exterior).simplify(0.25 * px))
            if lumen.is_empty or not outer.buffer(-0.5 * wall).contains(lumen):
                continue
            local.add(dx, dy, reach)
            plan.ducts.append(DuctShape(outer, lumen))
            plan.outers.append((outer, part))
            placed += 1
            break
    if placed:
        pl.circles.add(x, y, rl)
    return placed > 0


def _mitoses(rng: np.random.Generator, plan: FeaturePlan, rate: float, px: float) -> None:
    for i, (nest, necro) in enumerate(plan.nests):
        comp = Polygon(nest.exterior, [necro.exterior.coords] if necro else None)
        inner = comp.buffer(-12 * px)
        if inner.is_empty:
            continue
        area_mm2 = comp.area / (px * px) / 1e6
        n = int(rng.poisson(rate * area_mm2))
        if i == 0 and rate > 0:
            n = max(n, 1)
        if n == 0:
            continue
        shapely.prepare(inner)
        cand = sample_points_in(rng, inner, 4 * n)
        kept: list[np.ndarray] = []
        for p in cand:
            if all(np.hypot(*(p - q)) >= 20 * px for q in kept):
                kept.append(p)
            if len(kept) == n:
                break
        plan.mitoses += [Point(np.round(p / GRID) * GRID) for p in kept]


def place_features(rng: np.random.Generator, tissue: list[Polygon],
                   config: SynthConfig) -> FeaturePlan:
    """Place every feature inside ``tissue`` (level-0 px) for ``config``'s size and seed."""
    mpp = float(config.mpp)
    pl = _Placer(rng, tissue, mpp)
    plan = FeaturePlan()
    tissue_mm2 = sum(p.area for p in tissue) * mpp * mpp / 1e6
    rte = float(np.sqrt(tissue_mm2 * 1e6 / np.pi))  # radius of a disk of tissue area, µm
    carc_max = min(320.0, 0.32 * rte)
    tls_amax = min(0.5, max(0.05, 0.12 * tissue_mm2))
    adip_max = min(450.0, 0.3 * rte)
    lob_max = min(220.0, 0.28 * rte)

    def log_uniform(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))

    mandatory = tissue_mm2 >= 0.25 and config.density > 0
    if mandatory:
        area = log_uniform(0.05, tls_amax * 0.7)
        while not _tls(pl, area, plan) and area > 0.01:
            area *= 0.8
        r = rng.uniform(0.85, 1.0) * carc_max
        while not _carcinoma(pl, r, plan, satellites=True, necrosis=True) and r > 20:
            r *= 0.85
        r = rng.uniform(0.8, 1.0) * min(lob_max, 170.0)
        while not _lobule(pl, r, plan) and r > 40:
            r *= 0.85
        r = rng.uniform(0.7, 1.0) * min(adip_max, 260.0)
        while not _adipose(pl, r, plan) and r > 40:
            r *= 0.85

    extra = {k: max(0, int(rng.poisson(v * config.density * tissue_mm2)) - int(mandatory))
             for k, v in RATES_PER_MM2.items()}
    jobs: list[tuple[float, str, float]] = []  # (bounding radius µm, kind, size)
    for _ in range(extra["carcinoma"]):
        r = rng.uniform(min(50.0, carc_max), carc_max)
        jobs.append((r, "carcinoma", r))
    for _ in range(extra["tls"]):
        a = log_uniform(0.05, tls_amax)
        jobs.append((float(np.sqrt(a * 1e6 / np.pi)), "tls", a))
    for _ in range(extra["lobule"]):
        r = rng.uniform(min(90.0, lob_max), lob_max)
        jobs.append((r, "lobule", r))
    for _ in range(extra["adipose"]):
        r = rng.uniform(min(100.0, adip_max), adip_max)
        jobs.append((r, "adipose", r))
    jobs.sort(key=lambda j: -j[0])
    for _, kind, size in jobs:
        if kind == "carcinoma":
            _carcinoma(pl, size, plan, satellites=True)
        elif kind == "tls":
            _tls(pl, size, plan)
        elif kind == "lobule":
            _lobule(pl, size, plan)
        else:
            _adipose(pl, size, plan)
    _mitoses(rng, plan, float(config.mitoses_per_mm2), pl.px)
    return plan
