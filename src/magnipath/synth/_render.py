"""Render any level-0 box of a synthetic slide at any resolution, deterministically.

The label of every pixel is :func:`magnipath.rasterize.rasterize` of the ground
truth (pixel-centre rule); the colour comes from class textures plus nuclei as
stain optical densities, through the Beer–Lambert stain model. Every value is a
function of the pixel's absolute position, so rendering a box whole or in tiles
gives identical pixels (on aligned pixel grids, e.g. any tiling at level 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry import box as shapely_box

from magnipath.rasterize import rasterize
from magnipath.synth._config import SynthError
from magnipath.synth._layout import SlideLayout
from magnipath.synth._noise import mix_key, white_grid
from magnipath.synth._nuclei import (
    CARCINOMA,
    CENTROBLAST,
    DEBRIS,
    FIBROBLAST,
    LYMPHOCYTE,
    concat,
    duct_nuclei,
    fibre_directions,
    lattice_nuclei,
    mitosis_nuclei,
    stroma_lymph_prob,
    subset,
)
from magnipath.synth._stamp import Canvas, stamp, stamp_mitoses
from magnipath.synth._textures import Fibres, Grid, base_od
from magnipath.types import Box

_MANY_RINGS = 8
_MARGIN_UM = 12.0  # farther than any nucleus reaches from its centre
_MITOSIS_EXTRA_UM = 16.0  # a mitosis' halo (< 15 µm) and its clearance of nuclei (< 12 µm)


def _index(layout: SlideLayout):
    """STRtree over the truth objects, and per-object rings with their bounding boxes."""
    if "index" not in layout._cache:
        geoms = [g for _, g in layout.objects]
        values = [layout.class_map.index_of(n) for n, _ in layout.objects]
        rings = []
        for g in geoms:
            rs = [np.asarray(g.exterior.coords)] + [np.asarray(r.coords) for r in g.interiors]
            bb = np.array([[r[:, 0].min(), r[:, 1].min(), r[:, 0].max(), r[:, 1].max()]
                           for r in rs])
            rings.append((rs, bb))
        layout._cache["index"] = (shapely.STRtree(geoms), geoms, values, rings)
    return layout._cache["index"]


def shapes_for(layout: SlideLayout, x0: float, y0: float, x1: float,
               y1: float) -> list[tuple[object, int]]:
    """``(geometry, label)`` pairs whose rasterisation in ``[x0, x1) x [y0, y1)`` (level-0
    px) equals that of the whole ground truth.

    Objects with many rings keep only the rings whose bounding box overlaps the
    region: a ring wholly left, right, above or below it adds an even number of
    crossings outside the region to every scan line and cannot change a pixel
    inside (``polygon_mask``'s even-odd rule). The rings of one class are
    gathered into one geometry (the components of a class are disjoint, so the
    even-odd rule over all their rings is their union). Rings keep their exact
    coordinates, so the result is bit-identical to rasterising the truth.
    """
    tree, _geoms, values, rings = _index(layout)
    per_class: dict[int, list[Polygon]] = {}
    for i in sorted(tree.query(shapely_box(x0, y0, x1, y1)).tolist()):
        rs, bb = rings[i]
        if len(rs) <= _MANY_RINGS:
            keep = range(len(rs))
        else:
            keep = np.flatnonzero((bb[:, 2] > x0) & (bb[:, 0] < x1) & (bb[:, 3] > y0)
                                  & (bb[:, 1] < y1)).tolist()
        per_class.setdefault(values[i], []).extend(Polygon(rs[k]) for k in keep)
    # components of one class are disjoint: one even-odd pass over all their rings
    return [(MultiPolygon(p), v) for v, p in sorted(per_class.items()) if p]


def _grid(layout: SlideLayout, box: Box, mpp: float | None) -> Grid:
    mpp = layout.mpp if mpp is None else float(mpp)
    if not mpp > 0:
        raise SynthError(f"render resolution mpp={mpp!r}: give a positive number of µm per pixel")
    d = mpp / layout.mpp
    x0, y0, bw, bh = (float(v) for v in box)
    h, w = round(bh / d), round(bw / d)
    if h <= 0 or w <= 0:
        raise SynthError(f"render box {tuple(box)}: width and height must cover at least one "
                         f"output pixel at {mpp} µm/px")
    return Grid(x0, y0, d, h, w, layout.mpp)


def render_labels(layout: SlideLayout, box: Box, mpp: float | None = None) -> np.ndarray:
    """Class labels ``(y, x)`` uint8 of a level-0 box at ``mpp`` µm/px.

    Parameters
    ----------
    layout : SlideLayout
    box : Box
        ``(x, y, width, height)`` in level-0 pixels.
    mpp : float, optional
        Output resolution in µm/px (default: the slide's level-0 mpp).

    Returns
    -------
    numpy.ndarray
        ``rasterize`` of the ground truth with the class indices of
        ``layout.class_map``; outside the slide the label is 0 (Background).
    """
    g = _grid(layout, box, mpp)
    return _labels(layout, g)


def _labels(layout: SlideLayout, g: Grid) -> np.ndarray:
    x0, y0, x1, y1 = g.bounds
    return rasterize(shapes_for(layout, x0, y0, x1, y1), (g.x0, g.y0, x1 - x0, y1 - y0), g.d,
                     (g.h, g.w), fill=0)


def _nuclei(layout: SlideLayout, g: Grid, present: np.ndarray, fibres: Fibres,
            cv: Canvas) -> None:
    m = _MARGIN_UM / layout.mpp
    x0, y0, x1, y1 = g.bounds
    ext = (x0 - m, y0 - m, x1 + m, y1 + m)
    if present[1] or present[4]:
        gcg = layout.germinal_geometry()

        def tls_lymph(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return np.where(shapely.contains_xy(gcg, x, y), 0.25, 0.92)

        rules = [("TLS", tls_lymph), ("Stroma", stroma_lymph_prob(layout))]
        lymph = lattice_nuclei(layout, LYMPHOCYTE, rules, ext)
        if present[4] and layout.germinal_centres:
            cb = lattice_nuclei(layout, CENTROBLAST, [("TLS", 0.7)], ext)
            inside = shapely.contains_xy(gcg, cb.x, cb.y)
            stamp(cv, subset(cb, np.flatnonzero(inside)))
        if present[1]:
            fib = lattice_nuclei(layout, FIBROBLAST, [("Stroma", 0.4)], ext)
            fib.ct, fib.st = fibre_directions(layout, fib.x, fib.y, fibres)
            stamp(cv, fib)
        stamp(cv, lymph)
    if present[2]:
        # mitoses reach (halo) and clear carcinoma nuclei farther than other nuclei reach
        mm = m + _MITOSIS_EXTRA_UM / layout.mpp
        mit = mitosis_nuclei(layout, (x0 - mm, y0 - mm, x1 + mm, y1 + mm))
        carc = lattice_nuclei(layout, CARCINOMA, [("Carcinoma", 0.93)], ext)
        if len(mit) and len(carc):
            dist = np.hypot(carc.x[:, None] - mit.x[None, :], carc.y[:, None] - mit.y[None, :])
            clear = (mit.a + 6.0) / layout.mpp
            carc = subset(carc, np.flatnonzero((dist > clear[None, :]).all(axis=1)))
        stamp(cv, carc)
        stamp_mitoses(cv, mit)
    if present[3]:
        tree = _duct_tree(layout)
        ducts = [layout.ducts[i] for i in sorted(tree.query(shapely_box(*ext)).tolist())]
        pairs = [duct_nuclei(layout, d) for d in ducts]
        if pairs:
            stamp(cv, concat([p[0] for p in pairs], pairs[0][0].species))
            stamp(cv, concat([p[1] for p in pairs], pairs[0][1].species))
    if present[5]:
        stamp(cv, lattice_nuclei(layout, DEBRIS, [("Necrosis", 0.5)], ext))


def _duct_tree(layout: SlideLayout):
    if "ducts" not in layout._cache:
        layout._cache["ducts"] = shapely.STRtree([d.outer for d in layout.ducts])
    return layout._cache["ducts"]


def _fibres(layout: SlideLayout) -> Fibres:
    if "fibres" not in layout._cache:
        layout._cache["fibres"] = Fibres(layout.seed)
    return layout._cache["fibres"]


def render_region(layout: SlideLayout, box: Box, mpp: float | None = None) -> np.ndarray:
    """RGB image ``(y, x, 3)`` uint8 of a level-0 box at ``mpp`` µm/px.

    Parameters
    ----------
    layout : SlideLayout
        From :func:`magnipath.synth.make_layout`.
    box : Box
        ``(x, y, width, height)`` in level-0 pixels; may extend beyond the slide
        (rendered as glass there).
    mpp : float, optional
        Output resolution in µm/px (default: the slide's level-0 mpp). The output
        has ``round(height / d) x round(width / d)`` pixels, ``d = mpp / layout.mpp``.

    Returns
    -------
    numpy.ndarray
        ``(y, x, 3)`` uint8. The same level-0 pixel gets the same value whatever
        box renders it (for boxes on the same pixel grid).
    """
    blur = float(layout.config.scanner.blur_um)
    if blur > 0:
        return _render_blurred(layout, box, mpp, blur)
    g = _grid(layout, box, mpp)
    labels = _labels(layout, g)
    present = np.bincount(labels.ravel(), minlength=7) > 0
    fibres = _fibres(layout)
    od_h, od_e = base_od(layout, g, labels, present, fibres)
    noise = white_grid(g.ix, g.iy, mix_key(layout.seed, 81))
    if present[1:].any():
        cv = Canvas(g, labels, noise)
        _nuclei(layout, g, present, fibres, cv)
        tot = cv.totals()
        if tot is not None:
            od_h += tot[0]
            od_e += tot[1]
            np.maximum(od_e, 0.0, out=od_e)
    noise *= np.float32(0.006 * 200.0)  # OD noise, in quantisation steps
    if "lut" not in layout._cache:
        layout._cache["lut"] = layout.stain.lut()
    return layout.stain.to_rgb(od_h, od_e, noise, layout._cache["lut"])


def _render_blurred(layout: SlideLayout, box: Box, mpp: float | None, blur_um: float
                    ) -> np.ndarray:
    """:func:`render_region` through a Gaussian optical blur of ``blur_um`` µm (sd).

    The box is rendered with a margin of the filter's radius (output pixels) and
    cropped, so every output pixel sees the same neighbourhood whatever box or
    tile renders it (tile independence is kept).
    """
    from scipy.ndimage import gaussian_filter

    g = _grid(layout, box, mpp)
    sigma = blur_um / (g.d * layout.mpp)  # output pixels
    r = int(4.0 * sigma + 0.5)
    x0, y0, bw, bh = (float(v) for v in box)
    big = (x0 - r * g.d, y0 - r * g.d, bw + 2 * r * g.d, bh + 2 * r * g.d)
    sharp_scanner = dataclasses.replace(layout.config.scanner, blur_um=0.0)
    sharp = dataclasses.replace(layout.config, scanner=sharp_scanner)
    if "sharp" not in layout._cache:
        layout._cache["sharp"] = dataclasses.replace(layout, config=sharp, _cache=layout._cache)
    img = render_region(layout._cache["sharp"], big, mpp).astype(np.float32)
    out = gaussian_filter(img, sigma=(sigma, sigma, 0.0), mode="nearest", truncate=4.0)
    out = out[r:r + g.h, r:r + g.w]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
