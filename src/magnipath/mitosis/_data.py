"""Tiles for mitosis detection: a grid over each slide, labelled from the points.

Tiles are squares of ``tile`` output pixels read at ``mpp`` µm/px (default the
slide's level-0 resolution; Pearce used 64 and 256 px tiles at 40x), stepping
by ``stride`` output pixels. Tiles with less than ``min_tissue`` tissue are
skipped. Each tile keeps its level-0 box, slide, the maximum of the point
probability map and its label. ``max_negative_ratio`` keeps all positive
tiles and at most that many negatives per positive (a random subset), which
bounds the data of large slides while keeping the natural rarity of mitoses
(Pearce: about 5 % positive tiles, ratio 19).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magnipath._errors import MagnipathError
from magnipath.mitosis._labels import load_points, positive_tiles, tile_probabilities
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

GLASS = 215


class MitosisError(MagnipathError):
    """Mitosis data, models or inputs cannot be used."""


@dataclass
class MitosisSource:
    """One slide with its mitosis points.

    Attributes
    ----------
    slide : Path
    points : path, list of QuPathObject, (K, 2) array or None
        Level-0 ``(x, y)`` points (see :func:`load_points`).
    region : tuple or None
        Level-0 box ``(x, y, w, h)`` to tile instead of the whole slide.
    mpp : float or None
        Level-0 µm/px override for slides without metadata.
    """

    slide: Path
    points: object = None
    region: tuple[float, float, float, float] | None = None
    mpp: float | None = None


@dataclass(frozen=True)
class TileConfig:
    """How tiles are cut and labelled (sizes in output pixels of the tile)."""

    tile: int = 64
    mpp: float | None = None
    """µm/px of the tiles; default each slide's level-0 resolution."""
    stride: int | None = None
    """Step between tiles in output pixels; default ``tile`` (no overlap)."""
    a: float = 0.1
    """Decay of the probability map ``exp(-a d)`` per output pixel."""
    threshold: float = 0.5
    """A tile is positive when the map's maximum exceeds this."""
    min_tissue: float = 0.25
    max_negative_ratio: float | None = None
    seed: int = 0


@dataclass
class TileSet:
    """Labelled tiles in memory.

    Attributes
    ----------
    images : numpy.ndarray
        uint8 ``(N, t, t, 3)``.
    labels : numpy.ndarray
        uint8 ``(N,)``, 1 = mitosis.
    prob : numpy.ndarray
        float32 ``(N,)`` maximum of the point probability map.
    boxes : numpy.ndarray
        float64 ``(N, 4)`` level-0 ``(x, y, w, h)``.
    slide : numpy.ndarray
        int ``(N,)`` index into ``slides``.
    slides : list of str
    vectors : list of numpy.ndarray
        Per slide ``(2, 3)`` Macenko stain matrix (for RGB + H + E inputs).
    config : TileConfig
    mpps : list of float
        Per slide, the µm/px the tiles were read at.
    """

    images: np.ndarray
    labels: np.ndarray
    prob: np.ndarray
    boxes: np.ndarray
    slide: np.ndarray
    slides: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    config: TileConfig = field(default_factory=TileConfig)
    mpps: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> TileSet:
        """The tiles ``idx`` (same slides and vectors)."""
        return TileSet(self.images[idx], self.labels[idx], self.prob[idx], self.boxes[idx],
                       self.slide[idx], self.slides, self.vectors, self.config, self.mpps)

    def tile_vectors(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), 2, 3)`` stain matrices of the tiles ``idx``."""
        v = np.stack(self.vectors) if self.vectors else np.zeros((0, 2, 3))
        return v[self.slide[idx]]


def slide_vectors(slide) -> np.ndarray:
    """Macenko stain matrix of a slide from a ~1024 px thumbnail (reference when it fails)."""
    from magnipath.stain import REFERENCE_VECTORS, StainError, macenko_vectors

    mpp = max(slide.mpp, max(slide.width, slide.height) * slide.mpp / 1024)
    try:
        return macenko_vectors(slide.thumbnail(mpp))
    except StainError:
        return REFERENCE_VECTORS.copy()


def grid_boxes(region: tuple[float, float, float, float], side: float,
               step: float) -> np.ndarray:
    """Level-0 boxes of ``side`` px stepping by ``step`` over ``region`` (row-major).

    The grid starts at the region's top-left corner; the last row and column
    may reach past its edge.
    """
    x0, y0, w, h = region
    nx = 1 if w <= side else 1 + int(np.ceil((w - side) / step - 1e-9))
    ny = 1 if h <= side else 1 + int(np.ceil((h - side) / step - 1e-9))
    gy, gx = np.meshgrid(y0 + np.arange(ny) * step, x0 + np.arange(nx) * step, indexing="ij")
    n = gx.size
    return np.stack([gx.ravel(), gy.ravel(), np.full(n, side), np.full(n, side)], axis=1)


def read_tiles(slide, boxes: np.ndarray, tile: int, mpp: float, *,
               cancel: CancelCallback | None = None) -> np.ndarray:
    """Read ``(N, tile, tile, 3)`` uint8 tiles of level-0 ``boxes`` at ``mpp`` µm/px."""
    out = np.empty((len(boxes), tile, tile, 3), np.uint8)
    for i, b in enumerate(boxes):
        if i % 256 == 0:
            check_cancel(cancel)
        out[i] = slide.read_region(tuple(b), mpp=mpp, out_shape=(tile, tile))
    return out


def make_tiles(sources: list[MitosisSource], config: TileConfig = TileConfig(), *,
               progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None) -> TileSet:
    """Cut and label the tiles of every slide (see the module docstring).

    Returns
    -------
    TileSet
        In slide order, row-major within a slide.
    """
    from magnipath.slide import open_slide

    if not sources:
        raise MitosisError("no slides given.")
    rng = np.random.default_rng(config.seed)
    parts: list[tuple] = []
    names, vectors, mpps = [], [], []
    for si, src in enumerate(sources):
        check_cancel(cancel)
        pts = load_points(src.points)
        with open_slide(src.slide, mpp=src.mpp) as slide:
            mpp = config.mpp or slide.mpp
            d = mpp / slide.mpp
            region = src.region or (0.0, 0.0, float(slide.width), float(slide.height))
            boxes = grid_boxes(region, config.tile * d, (config.stride or config.tile) * d)
            images = read_tiles(slide, boxes, config.tile, mpp, cancel=cancel)
            vectors.append(slide_vectors(slide))
            mpps.append(float(mpp))
        tissue = np.mean(np.any(images <= GLASS, axis=-1), axis=(1, 2))
        keep = np.flatnonzero(tissue >= config.min_tissue)
        prob = tile_probabilities(pts, boxes[keep], config.tile, config.a)
        labels = positive_tiles(prob, config.threshold)
        if config.max_negative_ratio is not None:
            pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
            n_neg = min(len(neg), round(config.max_negative_ratio * max(len(pos), 1)))
            sel = np.sort(np.concatenate([pos, rng.choice(neg, n_neg, replace=False)]))
        else:
            sel = np.arange(len(keep))
        k = keep[sel]
        parts.append((images[k], labels[sel], prob[sel], boxes[k], np.full(len(k), si)))
        names.append(str(src.slide))
        report(progress, "mitosis/tiles", si + 1, len(sources), tiles=int(sum(
            len(p[1]) for p in parts)))
    cat = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    return TileSet(cat[0], cat[1].astype(np.uint8), cat[2].astype(np.float32), cat[3],
                   cat[4].astype(np.int64), names, vectors, config, mpps)


def save_tiles(tiles: TileSet, path: str | os.PathLike) -> Path:
    """Write a tile set to one ``.npz`` file (atomically)."""
    from magnipath._io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=tiles.images, labels=tiles.labels, prob=tiles.prob,
                 boxes=tiles.boxes, slide=tiles.slide, slides=np.array(tiles.slides),
                 vectors=np.stack(tiles.vectors) if tiles.vectors else np.zeros((0, 2, 3)),
                 mpps=np.array(tiles.mpps, dtype=np.float64),
                 config=np.array(json.dumps(asdict(tiles.config))))
    return path


def load_tiles(path: str | os.PathLike) -> TileSet:
    """Read a tile set written by :func:`save_tiles`."""
    try:
        with np.load(path) as z:
            cfg = json.loads(str(z["config"]))
            return TileSet(z["images"], z["labels"], z["prob"], z["boxes"], z["slide"],
                           [str(s) for s in z["slides"]], list(z["vectors"]),
                           TileConfig(**cfg), [float(v) for v in z["mpps"]])
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise MitosisError(f"{path} is not a mitosis tile set ({e}).") from e
