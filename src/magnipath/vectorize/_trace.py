"""Pixel-edge boundary tracing of one label block, in numpy (no per-pixel Python).

The boundary of every class region is a set of unit pixel edges. Each edge is
directed so that its class lies on its *left* (screen frame: x right, y down),
consecutive collinear unit edges of the same class are merged into runs, and
runs are linked end to start into closed rings. At a vertex where two pixels of
the same class touch only diagonally the ring turns towards its own pixel, so
regions are **4-connected**: diagonal neighbours are separate objects. A ring
that passes such a vertex twice is split there into simple loops. Loops with
negative shoelace area (in this frame) are outer shells, the others are holes;
each hole is given to the region on its left by a ray cast to the left.

Nothing here labels connected components: boundary edges are ~1 % of the
pixels, so every step after two dense comparisons works on edges only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# directions: 0 = +x, 1 = -x, 2 = -y (up on screen), 3 = +y (down on screen)
_LEFT_TURN = np.array([2, 3, 1, 0])


@dataclass
class Pieces:
    """Objects traced in one block (pieces of objects when the block is part of a grid).

    Attributes
    ----------
    value : (m,) int64
        Label value of each piece.
    count : (m,) int64
        Pixels in each piece.
    prob_sum : (m,) float64 or None
        Sum over the piece's pixels of the probability of its own class.
    geoms : (m,) object array of shapely Polygons
        In level-0 pixel coordinates (pixel edges).
    seams : dict
        ``side -> (piece, value, line, start, stop)`` for the runs that lie on the
        block's ``top``/``bottom``/``left``/``right`` border, in output-pixel
        coordinates of the whole label map (``line``: the border's row or column
        edge index; ``[start, stop)``: the pixels along it).
    """

    value: np.ndarray
    count: np.ndarray
    prob_sum: np.ndarray | None
    geoms: np.ndarray
    seams: dict[str, tuple[np.ndarray, ...]]


def _group_runs(major: np.ndarray, minor: np.ndarray, vals: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Start/end indices of maximal runs of consecutive ``minor`` with equal major and value."""
    brk = np.ones(len(major), dtype=bool)
    brk[1:] = (major[1:] != major[:-1]) | (minor[1:] != minor[:-1] + 1) | (vals[1:] != vals[:-1])
    starts = np.flatnonzero(brk)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    if len(ends):
        ends[-1] = len(brk) - 1
    return starts, ends


OUTSIDE = np.iinfo(np.int64).min
"""Value given to the pixels beyond the block's border (never a label value)."""


def _nonzero(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-D boolean array, several times faster."""
    rows = np.flatnonzero(d.any(axis=1))
    flat = np.flatnonzero(d[rows])
    r, c = np.divmod(flat, d.shape[1])
    return rows[r], c


def _lines(block: np.ndarray, vertical: bool):
    """Sparse unit edges between unequal pixels, block borders included.

    Horizontal lines (``vertical=False``): ``(y, x, above, below)`` sorted by (y, x).
    Vertical lines: ``(y, x, left, right)`` sorted by (x, y). Values are int64,
    :data:`OUTSIDE` beyond the border.
    """
    h, w = block.shape
    if vertical:
        ys, xs = _nonzero(block[:, :-1] != block[:, 1:])
        xs = xs + 1
        before, after = block[ys, xs - 1], block[ys, xs]
        rows = np.arange(h)
        ys = np.concatenate([rows, ys, rows])
        xs = np.concatenate([np.zeros(h, np.int64), xs, np.full(h, w)])
        first, last = block[:, 0], block[:, -1]
    else:
        ys, xs = _nonzero(block[:-1] != block[1:])
        ys = ys + 1
        before, after = block[ys - 1, xs], block[ys, xs]
        cols = np.arange(w)
        ys = np.concatenate([np.zeros(w, np.int64), ys, np.full(w, h)])
        xs = np.concatenate([cols, xs, cols])
        first, last = block[0], block[-1]
    out = np.full(len(first), OUTSIDE)
    before = np.concatenate([out, before.astype(np.int64), last.astype(np.int64)])
    after = np.concatenate([first.astype(np.int64), after.astype(np.int64), out])
    if vertical:
        o = np.lexsort((ys, xs))
        ys, xs, before, after = ys[o], xs[o], before[o], after[o]
    return ys, xs, before, after


def _edges(block: np.ndarray, keep: Callable[[np.ndarray], np.ndarray],
           srow: np.ndarray | None):
    """All boundary runs of the classes ``keep`` accepts, each with its class on the left.

    Returns the run arrays ``(sx, sy, ex, ey, val, dirn, psum)`` and the vertical
    unit edges with their class on the right (for the hole ray cast).
    """
    h, w = block.shape
    out: list[tuple[np.ndarray, ...]] = []

    ys, xs, va, vb = _lines(block, vertical=False)
    for vals, dirn in ((va, 0), (vb, 1)):
        sel = keep(vals)
        y, x, v = ys[sel], xs[sel], vals[sel]
        st, en = _group_runs(y, x, v)
        x0, x1, yy = x[st], x[en] + 1, y[st]
        if dirn == 0:  # class above: travel +x
            out.append((x0, yy, x1, yy, v[st], np.full(len(st), 0), np.zeros(len(st))))
        else:  # class below: travel -x
            out.append((x1, yy, x0, yy, v[st], np.full(len(st), 1), np.zeros(len(st))))

    ys, xs, vl, vr = _lines(block, vertical=True)
    down_units = None
    for vals, dirn in ((vl, 2), (vr, 3)):
        sel = keep(vals)
        y, x, v = ys[sel], xs[sel], vals[sel]
        st, en = _group_runs(x, y, v)
        y0, y1, xx = y[st], y[en] + 1, x[st]
        psum = np.zeros(len(st))
        if srow is not None and len(y):
            # Green: sum over a region = sum over its right edges of the row prefix sum
            # minus the same over its left edges (srow[r, x] = sum of row r left of x)
            contrib = srow[y, x].astype(np.float64)
            psum = np.add.reduceat(contrib, st) * (1.0 if dirn == 2 else -1.0)
        if dirn == 2:  # class on the left: travel up (-y)
            out.append((xx, y1, xx, y0, v[st], np.full(len(st), 2), psum))
        else:  # class on the right: travel down (+y)
            out.append((xx, y0, xx, y1, v[st], np.full(len(st), 3), psum))
            down_units = (y, x, v, np.repeat(np.arange(len(st)), en - st + 1))
    cols = [np.concatenate([o[i] for o in out]) for i in range(7)]
    n_before_down = sum(len(o[0]) for o in out[:-1])
    y, x, v, run_of_unit = down_units  # type: ignore[misc]
    return cols, (y, x, v, run_of_unit + n_before_down), (h, w)


def _link(sx, sy, ex, ey, code, dirn, w1: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """Successor of every run (runs must be sorted by start key); pairs at saddles."""
    ks = code * nv + sy * w1 + sx
    ke = code * nv + ey * w1 + ex
    lo = np.searchsorted(ks, ke, "left")
    cnt = np.searchsorted(ks, ke, "right") - lo
    if len(cnt) and (cnt.min() < 1 or cnt.max() > 2):  # pragma: no cover - internal invariant
        raise RuntimeError("vectorize: open boundary while tracing (internal error)")
    succ = lo.copy()
    two = np.flatnonzero(cnt == 2)
    if len(two):
        want = _LEFT_TURN[dirn[two]]
        first = lo[two]
        succ[two] = np.where(dirn[first] == want, first, first + 1)
    return succ, two


def _rank(succ: np.ndarray, ring: np.ndarray, n_rings: int) -> np.ndarray:
    """Position of every run in its ring, counted from the ring's lowest run index."""
    n = len(succ)
    idx = np.arange(n)
    start = np.full(n_rings, n, dtype=np.int64)
    np.minimum.at(start, ring, idx)
    length = np.bincount(ring, minlength=n_rings)
    is_start = idx == start[ring]
    p = np.where(is_start, idx, succ)
    d = (~is_start).astype(np.int64)
    steps = 1
    while steps < length.max(initial=1):
        d = d + d[p]
        p = p[p]
        steps *= 2
    return (length[ring] - d) % length[ring]


def _split_loops(order_runs: np.ndarray, verts: np.ndarray) -> list[np.ndarray]:
    """Split a closed walk that visits a vertex twice into simple loops."""
    loops: list[np.ndarray] = []
    stack_v: list[int] = []
    stack_i: list[int] = []
    where: dict[int, int] = {}
    for i, v in zip(order_runs.tolist(), verts.tolist(), strict=True):
        at = where.get(v)
        if at is not None:
            loops.append(np.array(stack_i[at:]))
            for u in stack_v[at:]:
                del where[u]
            del stack_v[at:], stack_i[at:]
        where[v] = len(stack_v)
        stack_v.append(v)
        stack_i.append(i)
    loops.append(np.array(stack_i))
    return loops


def _rings(succ, saddles, ke, vid) -> tuple[np.ndarray, np.ndarray, int]:
    """Ring label and in-ring position of every run, rings simple (split at saddles)."""
    n = len(succ)
    graph = coo_matrix((np.ones(n, dtype=np.int8), (np.arange(n), succ)), shape=(n, n))
    n_rings, ring = connected_components(graph, directed=True, connection="weak")
    ring = ring.astype(np.int64)
    pos = _rank(succ, ring, n_rings)
    if len(saddles):
        # two runs ending at the same saddle vertex in the same ring: that ring self-touches
        o = np.argsort(ke[saddles], kind="stable")
        s = saddles[o]
        same = (ke[s[0::2]] == ke[s[1::2]]) & (ring[s[0::2]] == ring[s[1::2]])
        bad = np.unique(ring[s[0::2][same]])
        if len(bad):
            members = np.flatnonzero(np.isin(ring, bad))
            members = members[np.lexsort((pos[members], ring[members]))]
            bounds = np.flatnonzero(np.diff(ring[members])) + 1
            for runs in np.split(members, bounds):
                for k, loop in enumerate(_split_loops(runs, vid[runs])):
                    if k:  # the first loop keeps the old label, the others get new ones
                        ring[loop] = n_rings
                        n_rings += 1
                    pos[loop] = np.arange(len(loop))
    return ring, pos, n_rings


def trace_block(block: np.ndarray, keep: Callable[[np.ndarray], np.ndarray],
                srow: np.ndarray | None, *,
                offset: tuple[int, int], origin: tuple[float, float], downsample: float
                ) -> Pieces:
    """Trace every region of a padded class image into polygons with holes.

    Parameters
    ----------
    block : (h, w) int array
        Label values of the block.
    keep : callable
        ``keep(values) -> bool array``: which label values (int64, :data:`OUTSIDE`
        beyond the border) are vectorised.
    srow : (h, w + 1) array or None
        Row prefix sums (exclusive) of the probability of each pixel's own class.
    offset : (row, col)
        Position of the block's first pixel in the whole label map (output pixels).
    origin, downsample
        Level-0 position of the label map's pixel (0, 0) corner and level-0 pixels
        per label pixel.
    """
    cols, down, (h, w) = _edges(block, keep, srow)
    sx, sy, ex, ey, val, dirn, psum = cols
    empty = np.zeros(0, dtype=np.int64)
    if len(sx) == 0:
        return Pieces(empty, empty, None if srow is None else np.zeros(0),
                      np.empty(0, dtype=object), {})
    values, code = np.unique(val, return_inverse=True)
    w1, nv = w + 1, (h + 1) * (w + 1)
    ks = code * nv + sy * w1 + sx
    order = np.argsort(ks, kind="stable")
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    sx, sy, ex, ey, val, dirn, psum, code = (a[order] for a in
                                            (sx, sy, ex, ey, val, dirn, psum, code))
    succ, saddles = _link(sx, sy, ex, ey, code, dirn, w1, nv)
    ke = code * nv + ey * w1 + ex
    ring, pos, n_rings = _rings(succ, saddles, ke, sy * w1 + sx)

    area2 = np.bincount(ring, weights=(sx * ey - ex * sy).astype(np.float64), minlength=n_rings)
    is_shell = area2 < 0
    own = np.arange(n_rings)
    holes = np.flatnonzero(~is_shell)
    if len(holes):
        # leftmost "class on the left" vertical run of every hole, then a ray to the left
        cand = np.flatnonzero((dirn == 2) & ~is_shell[ring])
        cand = cand[np.lexsort((sx[cand], ring[cand]))]
        first = cand[np.r_[True, ring[cand][1:] != ring[cand][:-1]]]
        dy, dx, dv, drun = down
        dcode = np.searchsorted(values, dv)
        dkey = (dcode * h + dy) * w1 + dx
        dsort = np.argsort(dkey, kind="stable")
        dkey = dkey[dsort]
        qkey = (code[first] * h + ey[first]) * w1 + sx[first] - 1
        hit = np.searchsorted(dkey, qkey, "right") - 1
        if (hit < 0).any() or (dkey[hit] // w1 != qkey // w1).any():  # pragma: no cover
            raise RuntimeError("vectorize: a hole has no enclosing region (internal error)")
        own[ring[first]] = ring[inv[drun[dsort[hit]]]]
        while True:
            nxt = own[own]
            if np.array_equal(nxt, own):
                break
            own = nxt
    shells = np.flatnonzero(is_shell)
    obj_of_shell = np.full(n_rings, -1)
    obj_of_shell[shells] = np.arange(len(shells))
    ring_obj = obj_of_shell[own]
    run_obj = ring_obj[ring]
    n_obj = len(shells)
    count = np.rint(-np.bincount(ring_obj, weights=area2, minlength=n_obj) / 2).astype(np.int64)
    prob = None if srow is None else np.bincount(run_obj, weights=psum, minlength=n_obj)
    value = np.zeros(n_obj, dtype=np.int64)
    value[run_obj] = val

    # coordinates: runs in (object, shell first, ring, position) order
    o = np.lexsort((pos, ring, ~is_shell[ring], run_obj))
    r0, c0 = offset
    xy = np.empty((len(o), 2))
    xy[:, 0] = origin[0] + (c0 + sx[o]) * downsample
    xy[:, 1] = origin[1] + (r0 + sy[o]) * downsample
    ro = ring[o]
    ring_seq = np.cumsum(np.r_[0, ro[1:] != ro[:-1]])
    rings_arr = shapely.linearrings(xy, indices=ring_seq)
    first_run = np.r_[0, np.flatnonzero(np.diff(ring_seq)) + 1]
    geoms = shapely.polygons(rings_arr, indices=run_obj[o][first_run])

    seams = {}
    for side, sel, line, a, b in (
            ("bottom", (dirn == 0) & (sy == h), r0 + sy, c0 + sx, c0 + ex),
            ("top", (dirn == 1) & (sy == 0), r0 + sy, c0 + ex, c0 + sx),
            ("right", (dirn == 2) & (sx == w), c0 + sx, r0 + ey, r0 + sy),
            ("left", (dirn == 3) & (sx == 0), c0 + sx, r0 + sy, r0 + ey)):
        k = np.flatnonzero(sel)
        seams[side] = (run_obj[k], val[k], line[k], a[k], b[k])
    return Pieces(value, count, prob, geoms, seams)
