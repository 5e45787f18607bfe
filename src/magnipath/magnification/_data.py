"""Magnification datasets: 224 px patches at 5..40x made from 40x slides by downsampling.

A patch of magnification ``m`` covers a square of ``224 * (10 / m) / mpp0``
level-0 pixels of its slide (``224 * 40 / m`` at a 40x scan), downsampled from
level 0 to ``mpp = 10 / m`` (:func:`patch_at`: exact box means for integer
factors, area-filter resampling otherwise; never from pyramid levels, whose
separate compression could betray the magnification). Each patch records its
magnification and the mean nucleus area in pixels *at that magnification*:

- from nucleus annotations (polygons, level-0 px) when given: the mean area of
  the polygons lying wholly inside the patch's box, divided by the squared
  downsample;
- otherwise from the source-resolution image: :func:`nucleus_mask` (known stain
  vectors, e.g. those of a synthetic slide, or a Macenko estimate), mean area of
  the blobs not touching the box border, divided by the squared downsample.

A patch needs at least ``min_nuclei`` complete nuclei (the paper's rule) and a
tissue fraction of at least ``min_tissue``. Splits are by slide.

On disk (one folder, written atomically)::

    DATASET/patches.npy   uint8 (N, 224, 224, 3)
    DATASET/index.json    format, config, slides (path, split), and per patch:
                          magnification, area, n_nuclei, slide, split, box (level-0 px), mpp
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magnipath._io import atomic_path
from magnipath.magnification._core import (
    MAGNIFICATIONS,
    PATCH,
    MagnificationError,
    check_magnifications,
    source_size,
)
from magnipath.magnification._nuclei import MIN_AREA, complete_blob_areas, nucleus_mask
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

FORMAT = "magnipath-magnification-patches"
GLASS = 215
"""A pixel whose three channels all exceed this is glass, not tissue."""


@dataclass
class MagSource:
    """One 40x slide for a magnification dataset.

    Attributes
    ----------
    slide : Path
        The slide file (its mpp must be known, or given as ``mpp``).
    nuclei : Path or list of QuPathObject or None
        Nucleus annotations (polygons, level-0 px) for the area target.
    stain_vectors : numpy.ndarray or None
        ``(2, 3)`` stain matrix (H, E) for the image-derived area target;
        default a Macenko estimate from a thumbnail of the slide.
    split : str or None
        ``"train"``, ``"val"`` or ``"test"``; default assigned by slide.
    mpp : float or None
        Level-0 µm/px override for slides without metadata.
    """

    slide: Path
    nuclei: Path | list | None = None
    stain_vectors: np.ndarray | None = None
    split: str | None = None
    mpp: float | None = None


@dataclass(frozen=True)
class MagDataConfig:
    """Settings of :func:`make_dataset` (patch sizes in output pixels)."""

    magnifications: tuple[float, ...] = MAGNIFICATIONS
    patch: int = PATCH
    per_class: int = 20
    """Patches per magnification per slide (random positions, tissue only)."""
    min_nuclei: int = 3
    min_tissue: float = 0.5
    h_threshold: float = 0.25
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    tries: int = 30
    """Random positions tried per wanted patch before giving up on a class."""


@dataclass
class MagDataset:
    """A magnification dataset opened for reading.

    Attributes
    ----------
    path : Path
    images : numpy.ndarray
        ``(N, P, P, 3)`` uint8 (memory-mapped).
    magnification, area : numpy.ndarray
        float64 ``(N,)``: magnification class and mean nucleus area (px at that
        magnification).
    n_nuclei, slide : numpy.ndarray
        int ``(N,)``.
    split : numpy.ndarray
        str ``(N,)``.
    boxes : numpy.ndarray
        float64 ``(N, 4)`` source boxes ``(x, y, w, h)`` in level-0 px.
    index : dict
        The parsed ``index.json``.
    """

    path: Path
    images: np.ndarray
    magnification: np.ndarray
    area: np.ndarray
    n_nuclei: np.ndarray
    slide: np.ndarray
    split: np.ndarray
    boxes: np.ndarray
    index: dict = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self.magnification)

    def indices(self, split: str | None) -> np.ndarray:
        """Patch indices of one split (all patches for ``None``)."""
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.split == split)


def _load_nuclei(src, slide_path: Path):
    if src is None:
        return None
    import shapely

    if isinstance(src, str | os.PathLike):
        from qupath_bridge.errors import QuPathBridgeError
        from qupath_bridge.geojson import read_geojson

        try:
            src = read_geojson(src)
        except QuPathBridgeError as e:
            raise MagnificationError(f"nucleus annotations of {slide_path}: {e}") from e
    polys = [o.geometry for o in src
             if o.geometry is not None and o.geometry.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise MagnificationError(f"nucleus annotations for {slide_path} hold no polygon; "
                                 "give nucleus outlines (polygons) or leave them out.")
    return shapely.STRtree(polys), polys


def _annotated_areas(index, box: tuple[float, float, float, float]) -> np.ndarray:
    import shapely

    tree, polys = index
    x, y, w, h = box
    b = shapely.box(x, y, x + w, y + h)
    hits = tree.query(b, predicate="contains")
    return np.asarray([polys[i].area for i in hits], dtype=np.float64)


def _slide_vectors(slide) -> np.ndarray:
    from magnipath.stain import REFERENCE_VECTORS, StainError, macenko_vectors

    thumb = slide.thumbnail(max(slide.mpp, max(slide.width, slide.height) * slide.mpp / 1024))
    try:
        return macenko_vectors(thumb)
    except StainError:
        return REFERENCE_VECTORS


def patch_at(slide, x: float, y: float, magnification: float,
             patch: int = PATCH) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """One patch at ``magnification`` whose source box has its top-left at level-0 ``(x, y)``.

    The patch is always computed from level-0 pixels (never from a pyramid
    level, whose own compression could tell the magnification apart): for an
    integer factor ``k = s / patch`` and integer ``(x, y)`` it is the exact mean
    of ``k x k`` blocks (halves rounded up), otherwise an area-filter resampling.

    Returns
    -------
    (numpy.ndarray, Box)
        ``(patch, patch, 3)`` uint8 at ``mpp = 10 / magnification`` and its
        level-0 box ``(x, y, s, s)``, ``s = source_size(magnification, slide.mpp)``.
    """
    from magnipath.slide._resample import box_reduce, resize_box

    s = source_size(magnification, source_mpp=slide.mpp, patch=patch)
    box = (float(x), float(y), s, s)
    k = round(s / patch)
    if abs(s - k * patch) < 1e-6 and float(x).is_integer() and float(y).is_integer():
        src = slide.read_level(0, int(y), int(x), k * patch, k * patch)
        return box_reduce(src, k), box
    x0, y0 = math.floor(x), math.floor(y)
    n = math.ceil(s + (x - x0)) + 1, math.ceil(s + (y - y0)) + 1
    src = slide.read_level(0, y0, x0, n[1], n[0])
    img = resize_box(src, (x - x0, y - y0, x - x0 + s, y - y0 + s), (patch, patch))
    return img, box


def _split_of(sources: list[MagSource], config: MagDataConfig) -> list[str]:
    from magnipath.dataset import assign_splits

    names = [str(i) for i in range(len(sources))]
    auto = assign_splits(names, config.ratios, config.seed)
    out = []
    for i, s in enumerate(sources):
        sp = s.split or auto[str(i)]
        if sp not in ("train", "val", "test"):
            raise MagnificationError(f"{s.slide}: split {sp!r} must be train, val or test.")
        out.append(sp)
    return out


def make_dataset(sources: list[MagSource], out: str | os.PathLike,
                 config: MagDataConfig = MagDataConfig(), *, overwrite: bool = False,
                 progress: ProgressCallback | None = None,
                 cancel: CancelCallback | None = None) -> dict:
    """Cut patches at every magnification from 40x slides (see the module docstring).

    Parameters
    ----------
    sources : list of MagSource
        The slides (level 0 at or above the highest requested magnification).
    out : path
        Dataset folder to write (atomically).
    config : MagDataConfig
    overwrite : bool
        Replace an existing folder.
    progress, cancel : callable, optional
        Progress events (stage ``"magnification/data"``, one per slide and
        magnification) and cancellation.

    Returns
    -------
    dict
        Summary: path, patch counts per split and magnification, skipped classes.
    """
    from magnipath.slide import open_slide

    out = Path(out)
    if out.exists() and not overwrite:
        raise MagnificationError(f"{out} exists; choose another folder or pass overwrite=True "
                                 "(--overwrite).")
    if not sources:
        raise MagnificationError("no slides given; give at least one 40x slide.")
    splits = _split_of(sources, config)
    rng = np.random.default_rng(config.seed)
    recs: list[dict] = []
    imgs: list[np.ndarray] = []
    short: list[str] = []
    total = len(sources) * len(config.magnifications)
    step = 0
    for si, src in enumerate(sources):
        with open_slide(src.slide, mpp=src.mpp) as slide:
            mags = check_magnifications(config.magnifications, slide.magnification)
            nuclei = _load_nuclei(src.nuclei, Path(src.slide))
            vectors = src.stain_vectors if src.stain_vectors is not None or nuclei \
                else _slide_vectors(slide)
            for m in mags:
                check_cancel(cancel)
                got = _patches_for(slide, m, config, rng, nuclei, vectors, imgs, recs, si,
                                   splits[si], cancel)
                if got < config.per_class:
                    short.append(f"{Path(src.slide).name} {m:g}x: {got}/{config.per_class}")
                step += 1
                report(progress, "magnification/data", step, total, patches=len(recs))
    if not recs:
        raise MagnificationError("no patch passed the filters (tissue fraction, at least "
                                 f"{config.min_nuclei} complete nuclei); use larger slides "
                                 "with tissue or lower min_tissue / min_nuclei.")
    index = {"format": FORMAT, "version": 1, "config": _config_json(config),
             "slides": [{"path": str(s.slide), "split": sp} for s, sp in zip(sources, splits,
                                                                              strict=True)],
             "patches": recs}
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        mm = np.lib.format.open_memmap(tmp / "patches.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(imgs), *imgs[0].shape))
        for i, im in enumerate(imgs):
            mm[i] = im
        mm.flush()
        del mm
        (tmp / "index.json").write_text(json.dumps(index))
    counts: dict[str, dict[str, int]] = {}
    for r in recs:
        c = counts.setdefault(r["split"], {})
        c[f"{r['magnification']:g}x"] = c.get(f"{r['magnification']:g}x", 0) + 1
    return {"dataset": str(out), "patches": len(recs), "per_split": counts,
            "short_classes": short}


def _config_json(config: MagDataConfig) -> dict:
    d = asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _patches_for(slide, m: float, config: MagDataConfig, rng: np.random.Generator, nuclei,
                 vectors, imgs: list, recs: list, si: int, split: str,
                 cancel: CancelCallback | None) -> int:
    s = source_size(m, source_mpp=slide.mpp, patch=config.patch)
    if s > slide.width or s > slide.height:
        return 0
    d = s / config.patch  # level-0 px per patch px
    got = 0
    for _ in range(config.per_class * config.tries):
        if got >= config.per_class:
            break
        x = int(rng.integers(0, int(slide.width - s) + 1))
        y = int(rng.integers(0, int(slide.height - s) + 1))
        img, box = patch_at(slide, x, y, m, config.patch)
        tissue = float(np.mean(np.any(img <= GLASS, axis=-1)))
        if tissue < config.min_tissue:
            continue
        if nuclei is not None:
            areas0 = _annotated_areas(nuclei, box)
        else:
            src = slide.read_region((x, y, math.ceil(s), math.ceil(s)))
            areas0 = complete_blob_areas(nucleus_mask(src, vectors, config.h_threshold),
                                         MIN_AREA)
        if len(areas0) < config.min_nuclei:
            continue
        imgs.append(img)
        recs.append({"magnification": float(m), "area": float(areas0.mean() / (d * d)),
                     "n_nuclei": len(areas0), "slide": si, "split": split,
                     "box": [float(v) for v in box], "mpp": 10.0 / m})
        got += 1
        check_cancel(cancel)
    return got


def open_dataset(path: str | os.PathLike) -> MagDataset:
    """Open a folder written by :func:`make_dataset` (patches memory-mapped)."""
    path = Path(path)
    idx_path, npy = path / "index.json", path / "patches.npy"
    if not idx_path.is_file() or not npy.is_file():
        raise MagnificationError(f"{path} is not a magnification dataset (no index.json or "
                                 "patches.npy); make one with 'magnipath magnification "
                                 "make-data'.")
    try:
        index = json.loads(idx_path.read_text())
    except (OSError, ValueError) as e:
        raise MagnificationError(f"{idx_path} cannot be read ({e}).") from e
    if index.get("format") != FORMAT:
        raise MagnificationError(f"{idx_path} is not a magnification dataset index.")
    recs = index["patches"]
    images = np.load(npy, mmap_mode="r")
    if len(images) != len(recs):
        raise MagnificationError(f"{path}: {len(images)} patches but {len(recs)} records; "
                                 "the dataset is damaged, make it again.")
    return MagDataset(path, images,
                      np.array([r["magnification"] for r in recs], dtype=np.float64),
                      np.array([r["area"] for r in recs], dtype=np.float64),
                      np.array([r["n_nuclei"] for r in recs], dtype=np.int64),
                      np.array([r["slide"] for r in recs], dtype=np.int64),
                      np.array([r["split"] for r in recs]),
                      np.array([r["box"] for r in recs], dtype=np.float64).reshape(-1, 4),
                      index)


def synthetic_sources(folder: str | os.PathLike, n: int, *, size: int = 4096,
                      seed: int = 0, progress: ProgressCallback | None = None,
                      cancel: CancelCallback | None = None) -> list[MagSource]:
    """Make ``n`` synthetic 40x slides (``synth_XX.tif``) with their known stain vectors.

    The area target of synthetic slides comes from the rendered haematoxylin
    channel thresholded with the slide's own (known) stain vectors.
    """
    from magnipath.synth import SynthConfig, make_layout, synthesize

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        cfg = SynthConfig(width=size, height=size, mpp=0.25, seed=seed + i)
        path = folder / f"synth_{seed + i:03d}.tif"
        if not path.exists():
            synthesize(path, cfg, cancel=cancel)
        lay = make_layout(cfg)
        out.append(MagSource(path, stain_vectors=np.array([lay.stain.h, lay.stain.e])))
        report(progress, "magnification/synth", i + 1, n)
    return out
