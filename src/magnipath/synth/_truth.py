"""Ground-truth annotations of a synthetic slide as QuPath objects (level-0 pixels).

* exhaustive: one annotation per connected component of every class; together
  they partition the slide;
* partial (the DMMN style, Ho et al.): whole components, each shrunk by half a
  gap so that thin unlabelled bands separate neighbouring classes, about 20%
  of the components left out at random (the largest of each class is always
  kept), and Background only partly annotated (a band of glass around the
  tissue and about half of the lumina);
* mitoses: one point annotation of class ``Mitosis`` per figure.
"""

from __future__ import annotations

import uuid

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from magnipath.synth._layout import MITOSIS_CLASS, MITOSIS_COLOR, SlideLayout
from qupath_bridge.objects import QuPathObject


def _uuid(seed: int, kind: int, i: int) -> str:
    """A deterministic UUID (version 4 layout) for object ``i`` of a file kind."""
    rng = np.random.default_rng([seed, kind, i, 0x0B])
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _obj(layout: SlideLayout, geom: BaseGeometry, name: str, kind: int, i: int) -> QuPathObject:
    color = layout.class_map.by_index(layout.class_map.index_of(name)).color
    return QuPathObject(geom, "annotation", name, tuple(color), id=_uuid(layout.seed, kind, i))


def exhaustive_objects(layout: SlideLayout) -> list[QuPathObject]:
    """One annotation per class component (Polygon, level-0 px)."""
    return [_obj(layout, g, n, 1, i) for i, (n, g) in enumerate(layout.objects)]


def mitosis_objects(layout: SlideLayout) -> list[QuPathObject]:
    """One point annotation of class ``Mitosis`` per mitotic figure (level-0 px)."""
    return [QuPathObject(p, "annotation", MITOSIS_CLASS, MITOSIS_COLOR,
                         id=_uuid(layout.seed, 3, i)) for i, p in enumerate(layout.mitoses)]


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    parts = [p for p in shapely.get_parts(g) if isinstance(p, Polygon) and not p.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def partial_objects(layout: SlideLayout) -> list[QuPathObject]:
    """DMMN-style partial annotations: a subset of each exhaustive component, shrunk.

    Every returned geometry lies inside the exhaustive component it comes from;
    neighbouring components are separated by an unlabelled gap of
    ``config.partial_gap_um`` µm.
    """
    cfg = layout.config
    rng = np.random.default_rng([layout.seed, 0xDA77])
    half = 0.5 * cfg.partial_gap_um / layout.mpp
    largest: dict[str, int] = {}
    for i, (n, g) in enumerate(layout.objects):
        if n not in largest or g.area > layout.objects[largest[n]][1].area:
            largest[n] = i
    tissue = MultiPolygon(layout.tissue) if layout.tissue else MultiPolygon()
    band = 150.0 / layout.mpp  # glass annotated around the tissue, µm -> px
    out: list[QuPathObject] = []
    for i, (n, g) in enumerate(layout.objects):
        u = rng.random()
        if n == "Background":
            if i == 0:  # the glass around the tissue: only a band next to it
                g = g.intersection(tissue.buffer(band + half, quad_segs=4))
            elif u >= 0.5:
                continue
        elif i != largest[n] and u >= cfg.partial_keep:
            continue
        # thin structures (duct walls) shrink less, so that they do not vanish
        h_i = min(half, 0.3 * 2.0 * g.area / max(g.length, 1e-9))
        shrunk = _polygonal(g.buffer(-h_i, quad_segs=4)) if h_i > 0 else g
        if shrunk.is_empty or shrunk.area < 4.0:
            continue
        out.append(_obj(layout, shrunk, n, 2, i))
    return out
