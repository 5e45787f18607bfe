"""Joining the pieces of objects that cross block seams."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from magnipath.vectorize._trace import Pieces


def _seam_links(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    """Pairs ``(piece_a, piece_b)`` whose border runs on the same seam overlap.

    ``a`` and ``b`` are ``(piece, value, line, start, stop)`` arrays of runs on the two
    sides of seams (e.g. the bottom runs of upper blocks and the top runs of lower
    blocks). Two runs match when they lie on the same line, have the same label
    value and share at least one pixel column: the pixels either side are
    4-neighbours of the same class, so the pieces are one object.
    """
    if len(a[0]) == 0 or len(b[0]) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    keys = np.concatenate([np.stack([a[2], a[1]], 1), np.stack([b[2], b[1]], 1)])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    ga, gb = group[: len(a[0])], group[len(a[0]):]
    span = int(max(a[4].max(), b[4].max())) + 1
    bo = np.lexsort((b[3], gb))
    b_start = gb[bo] * span + b[3][bo]
    b_stop = gb[bo] * span + b[4][bo]
    lo = np.searchsorted(b_stop, ga * span + a[3], "right")
    hi = np.searchsorted(b_start, ga * span + a[4], "left")
    n = np.maximum(hi - lo, 0)
    if n.sum() == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ia = np.repeat(np.arange(len(n)), n)
    ib = np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    return np.stack([a[0][ia], b[0][bo[ib]]], 1)


def merge_pieces(blocks: list[Pieces]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                np.ndarray]:
    """Merge the pieces of all blocks into whole objects.

    Returns
    -------
    value, count, prob_sum, geoms
        One entry per object: label value, pixel count, probability sum (or
        ``None``) and the geometry (the union of its pieces, collinear seam
        vertices removed).
    """
    offsets = np.cumsum([0] + [len(p.value) for p in blocks])
    n = int(offsets[-1])
    value = np.concatenate([p.value for p in blocks]) if blocks else np.zeros(0, np.int64)
    count = np.concatenate([p.count for p in blocks]) if blocks else np.zeros(0, np.int64)
    has_prob = bool(blocks) and blocks[0].prob_sum is not None
    prob = np.concatenate([p.prob_sum for p in blocks]) if has_prob else None  # type: ignore[misc]
    geoms = (np.concatenate([p.geoms for p in blocks]) if blocks
             else np.empty(0, dtype=object))
    if len(blocks) <= 1:
        return value, count, prob, geoms

    def side(name: str) -> tuple[np.ndarray, ...]:
        parts = [(p.seams[name][0] + off, *p.seams[name][1:])
                 for p, off in zip(blocks, offsets[:-1], strict=True) if name in p.seams]
        if not parts:
            return tuple(np.zeros(0, np.int64) for _ in range(5))
        return tuple(np.concatenate([q[i] for q in parts]) for i in range(5))

    links = np.concatenate([_seam_links(side("bottom"), side("top")),
                            _seam_links(side("right"), side("left"))])
    graph = coo_matrix((np.ones(len(links), np.int8), (links[:, 0], links[:, 1])), shape=(n, n))
    n_obj, group = connected_components(graph, directed=False)
    sizes = np.bincount(group, minlength=n_obj)
    first = np.full(n_obj, n, dtype=np.int64)
    np.minimum.at(first, group, np.arange(n))
    out_geoms = geoms[first].copy()
    multi = np.flatnonzero(sizes > 1)
    if len(multi):
        order = np.argsort(group, kind="stable")
        bounds = np.r_[0, np.cumsum(sizes)]
        for g in multi:
            members = order[bounds[g]:bounds[g + 1]]
            out_geoms[g] = shapely.simplify(shapely.union_all(geoms[members]), 0.0)
    out_prob = None if prob is None else np.bincount(group, weights=prob, minlength=n_obj)
    return (value[first], np.bincount(group, weights=count, minlength=n_obj).astype(np.int64),
            out_prob, out_geoms)
