"""Ground-truth geometry of a synthetic slide, deterministic from the seed and the size.

A tissue outline (one to three smooth blobs) on white glass; inside it stroma
everywhere, with carcinoma nests (necrotic centres when big), benign lobules of
small ducts (epithelial rings around a lumen), tertiary lymphoid structures and
adipose regions. All coordinates are level-0 pixels on a 1/8 px grid; sizes are
drawn in µm and converted with the slide's mpp.

The class polygons partition the slide rectangle exactly: features lie strictly
inside the tissue and apart from each other, so every class polygon is built
from the very same rings (a nest's exterior is a hole of the stroma, a lumen is
a hole of its duct and a Background polygon, ...), without any overlay
arithmetic that could move a vertex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from magnipath.classes import ClassMap, ClassSpec
from magnipath.synth._config import SynthConfig
from magnipath.synth._features import FeaturePlan, place_features
from magnipath.synth._shapes import GRID, blob
from magnipath.synth._stain import StainModel

SYNTH_CLASSES = ClassMap((
    ClassSpec("Background", 0, (180, 180, 180)),
    ClassSpec("Stroma", 1, (150, 200, 150)),
    ClassSpec("Carcinoma", 2, (200, 0, 0)),
    ClassSpec("Benign", 3, (0, 150, 200)),
    ClassSpec("TLS", 4, (160, 90, 160)),
    ClassSpec("Necrosis", 5, (50, 50, 50)),
    ClassSpec("Adipose", 6, (250, 220, 130)),
))
"""The classes of synthetic slides: QuPath path-class names, label indices, colours."""

MITOSIS_CLASS = "Mitosis"
MITOSIS_COLOR = (255, 0, 255)


@dataclass(frozen=True)
class Duct:
    """One benign duct: its epithelial ring ``outer`` minus ``lumen`` (level-0 px)."""

    index: int
    outer: Polygon
    lumen: Polygon


@dataclass
class SlideLayout:
    """The ground truth of one synthetic slide, in level-0 pixels.

    Attributes
    ----------
    width, height : int
        Level-0 size in pixels.
    mpp : float
        Level-0 resolution, µm/px.
    seed : int
    objects : list of (str, Polygon)
        One entry per connected component: class name and polygon. Together
        they partition the rectangle ``[0, width] x [0, height]``.
    mitoses : list of Point
        Mitotic figures (centres), all inside carcinoma.
    class_map : ClassMap
    tissue : list of Polygon
        The tissue outline (disjoint parts, no holes).
    germinal_centres : list of Polygon
        Paler centres inside some TLS (texture only; they are TLS).
    ducts : list of Duct
        Benign ducts (texture: a ring of nuclei around each lumen).
    stain : StainModel
    config : SynthConfig
    """

    width: int
    height: int
    mpp: float
    seed: int
    objects: list[tuple[str, Polygon]]
    mitoses: list[Point]
    class_map: ClassMap
    tissue: list[Polygon]
    germinal_centres: list[Polygon]
    ducts: list[Duct]
    stain: StainModel
    config: SynthConfig
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def geometry_of(self, name: str) -> BaseGeometry:
        """All components of class ``name`` as one (prepared) MultiPolygon, level-0 px."""
        key = ("class", name)
        if key not in self._cache:
            parts = [g for n, g in self.objects if n == name]
            geom = MultiPolygon(parts) if parts else MultiPolygon()
            shapely.prepare(geom)
            self._cache[key] = geom
        return self._cache[key]

    def germinal_geometry(self) -> BaseGeometry:
        """Union of germinal centres (prepared), level-0 px."""
        key = ("gc",)
        if key not in self._cache:
            g = MultiPolygon(self.germinal_centres) if self.germinal_centres else MultiPolygon()
            shapely.prepare(g)
            self._cache[key] = g
        return self._cache[key]

    def counts(self) -> dict[str, int]:
        """Connected components per class name (every class listed)."""
        out = {n: 0 for n in self.class_map.names}
        for n, _ in self.objects:
            out[n] += 1
        return out


def _tissue(rng: np.random.Generator, w: int, h: int, mpp: float) -> list[Polygon]:
    """One to three smooth blobs, strictly inside the slide with a margin."""
    area_mm2 = w * h * mpp * mpp / 1e6
    n = 1 if area_mm2 < 8 else int(rng.integers(1, 4))
    margin = max(32.0, 0.03 * min(w, h))
    along_x = w >= h
    blobs = []
    for i in range(n):
        # split the long side into n cells, one blob per cell
        if along_x:
            cw, ch = w / n, h
            cx, cy = cw * (i + 0.5), h / 2
        else:
            cw, ch = w, h / n
            cx, cy = w / 2, ch * (i + 0.5)
        cx += rng.uniform(-0.04, 0.04) * cw
        cy += rng.uniform(-0.04, 0.04) * ch
        rough = rng.uniform(0.08, 0.16)
        overlap = 1.0 if n == 1 else 1.12  # neighbouring blobs may merge
        rx = 0.5 * cw * overlap * rng.uniform(0.9, 1.0)
        ry = 0.5 * ch * rng.uniform(0.9, 1.0)
        poly, _ = blob(rng, cx, cy, rx, ry, roughness=rough, angle=rng.uniform(-0.25, 0.25),
                       max_vertices=900)
        # shrink about the centre until it keeps the margin
        x0, y0, x1, y1 = poly.bounds
        s = min(1.0, (cx - margin) / max(cx - x0, 1e-9), (w - margin - cx) / max(x1 - cx, 1e-9),
                (cy - margin) / max(cy - y0, 1e-9), (h - margin - cy) / max(y1 - cy, 1e-9))
        if s < 1.0:
            poly = affinity.scale(poly, s, s, origin=(cx, cy))
        blobs.append(poly)
    union = shapely.set_precision(shapely.union_all(blobs), GRID)
    parts = [Polygon(p.exterior) for p in shapely.get_parts(union) if p.geom_type == "Polygon"]
    return sorted((p for p in parts if p.area > 0), key=lambda p: p.bounds)


def make_layout(config: SynthConfig) -> SlideLayout:
    """Draw the ground-truth layout of a slide from ``config`` (seed, size, mpp, densities).

    Parameters
    ----------
    config : SynthConfig

    Returns
    -------
    SlideLayout
        Class polygons (a partition of the slide), mitoses, germinal centres and
        ducts, all in level-0 pixels.

    Raises
    ------
    SynthError
        When a setting is out of range.
    """
    config.validate()
    w, h, mpp = config.width, config.height, float(config.mpp)
    rng = np.random.default_rng([config.seed, 0x1A7])
    tissue = _tissue(rng, w, h, mpp)
    plan: FeaturePlan = place_features(rng, tissue, config)

    objects: list[tuple[str, Polygon]] = []
    rect = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    objects.append(("Background", Polygon(rect, [p.exterior.coords for p in tissue])))
    lumina = [d.lumen for d in plan.ducts]
    objects += [("Background", Polygon(lu.exterior)) for lu in lumina]
    for i, part in enumerate(tissue):
        holes = [f.exterior.coords for f, ti in plan.outers if ti == i]
        objects.append(("Stroma", Polygon(part.exterior, holes)))
    for nest, necro in plan.nests:
        objects.append(("Carcinoma",
                        Polygon(nest.exterior, [necro.exterior.coords] if necro else None)))
    for d in plan.ducts:
        objects.append(("Benign", Polygon(d.outer.exterior, [d.lumen.exterior.coords])))
    objects += [("TLS", Polygon(t.exterior)) for t in plan.tls]
    objects += [("Necrosis", Polygon(n.exterior)) for _, n in plan.nests if n is not None]
    objects += [("Adipose", Polygon(a.exterior)) for a in plan.adipose]

    ducts = [Duct(i, d.outer, d.lumen) for i, d in enumerate(plan.ducts)]
    stain = StainModel.for_seed(config.seed, config.scanner)
    return SlideLayout(w, h, mpp, config.seed, objects, plan.mitoses, SYNTH_CLASSES, tissue,
                       plan.germinal_centres, ducts, stain, config)
