"""Running the mitosis classifier over a slide, a region or an image: heat map and objects.

Tiles of the model's size and resolution step over the region (``stride``
output pixels, default the tile size); tiles without tissue are skipped (NaN in
the heat map). Heat-map cell ``(r, c)`` is the tile whose level-0 box starts at
``origin + (c, r) * step``: in napari, add it with ``scale=(step, step)`` and
``translate=(origin_y + (tile_size - step) / 2, origin_x + ...)`` or simply
``translate=origin[::-1]`` for non-overlapping tiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magnipath.mitosis._data import GLASS, MitosisError, grid_boxes, slide_vectors
from magnipath.mitosis._model import MitosisModel, load_model
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

MITOSIS_COLOR = (255, 0, 255)
PROBABILITY = "Mitosis probability"


@dataclass
class Detection:
    """Per-tile mitosis probabilities over a region.

    Attributes
    ----------
    heatmap : numpy.ndarray
        float32 ``(rows, cols)``; NaN for tiles skipped as background.
    origin : (float, float)
        Level-0 ``(x, y)`` of the first tile's top-left corner.
    step : float
        Level-0 pixels between neighbouring cells.
    tile_size : float
        Level-0 side of each tile.
    boxes : numpy.ndarray
        float64 ``(M, 4)`` level-0 boxes of the tiles evaluated.
    probs : numpy.ndarray
        float32 ``(M,)`` their probabilities.
    threshold : float
        Default cut for :meth:`objects` (0.5).
    mpp : float
        µm/px the tiles were read at.
    slide_mpp : float or None
        Level-0 µm/px of the slide (None for arrays).
    slide_mpp_source : str or None
        Where it came from (the slide's ``mpp_source``: ``"ome"``, ``"aperio"``,
        ``"override"``...; None for arrays).
    """

    heatmap: np.ndarray
    origin: tuple[float, float]
    step: float
    tile_size: float
    boxes: np.ndarray
    probs: np.ndarray
    threshold: float = 0.5
    mpp: float = 0.25
    slide_mpp: float | None = None
    slide_mpp_source: str | None = None

    def objects(self, threshold: float | None = None, *, as_points: bool = False) -> list:
        """QuPath detections (class ``Mitosis``) of the tiles with probability above the cut.

        Each carries the measurement ``"Mitosis probability"``; geometry is the
        tile square, or its centre point with ``as_points``, in level-0 px.
        """
        import shapely

        from qupath_bridge.objects import QuPathObject

        t = self.threshold if threshold is None else float(threshold)
        out = []
        for (x, y, w, h), p in zip(self.boxes, self.probs, strict=True):
            if p <= t:
                continue
            geom = shapely.Point(x + w / 2, y + h / 2) if as_points else \
                shapely.box(x, y, x + w, y + h)
            out.append(QuPathObject(geom, "detection", "Mitosis", MITOSIS_COLOR,
                                    measurements={PROBABILITY: float(p)}))
        return out

    def write_geojson(self, path: str | os.PathLike, threshold: float | None = None, *,
                      as_points: bool = False) -> Path:
        """Write :meth:`objects` as QuPath GeoJSON (atomically)."""
        from qupath_bridge.geojson import write_geojson

        return write_geojson(self.objects(threshold, as_points=as_points), path)


class _ArraySource:
    """An in-memory image read like a slide (level-0 = array pixels, no resampling)."""

    def __init__(self, rgb: np.ndarray, mpp: float) -> None:
        self.rgb, self.mpp = rgb, float(mpp)
        self.height, self.width = rgb.shape[:2]

    def read_region(self, box, *, mpp: float, out_shape: tuple[int, int]) -> np.ndarray:
        x, y = round(box[0]), round(box[1])
        h, w = out_shape
        out = np.full((h, w, 3), 255, np.uint8)
        src = self.rgb[max(y, 0):y + h, max(x, 0):x + w]
        out[max(-y, 0):max(-y, 0) + src.shape[0], max(-x, 0):max(-x, 0) + src.shape[1]] = src
        return out


def detect(model: MitosisModel | str | os.PathLike, source, *,
           region: tuple[float, float, float, float] | None = None, stride: int | None = None,
           image_mpp: float | None = None, slide_mpp: float | None = None,
           min_tissue: float = 0.25, batch_size: int = 256,
           device: str = "cpu", progress: ProgressCallback | None = None,
           cancel: CancelCallback | None = None) -> Detection:
    """Mitosis probability of every tissue tile of a slide, region or image.

    Parameters
    ----------
    model : MitosisModel or path
    source : path, Slide or numpy.ndarray
        A slide file, an open :class:`magnipath.slide.Slide`, or an RGB array
        ``(y, x, 3)`` (e.g. a napari image layer) whose pixels are taken at the
        model's resolution unless ``image_mpp`` says otherwise (then it must match).
    region : tuple, optional
        Level-0 box ``(x, y, w, h)``; default the whole slide or image.
    slide_mpp : float, optional
        Level-0 µm/px of a slide *file* whose metadata has none (or is wrong);
        passed to :func:`magnipath.slide.open_slide`.
    stride : int, optional
        Step in output pixels (default the tile size).
    min_tissue : float
        Tiles with a smaller tissue fraction are skipped.

    Returns
    -------
    Detection
    """
    if not isinstance(model, MitosisModel):
        model = load_model(model)
    if isinstance(source, np.ndarray):
        from magnipath.magnification._predict import as_rgb

        mpp = float(model.card.get("mpp") or 0.25)
        if image_mpp is not None and abs(image_mpp / mpp - 1) > 0.01:
            raise MitosisError(f"the image is at {image_mpp} µm/px but the model was trained at "
                               f"{mpp} µm/px; resample the image first.")
        return _run(model, _ArraySource(as_rgb(source), mpp), region, stride, mpp, min_tissue,
                    batch_size, device, progress, cancel, None)
    from magnipath.slide import Slide, open_slide

    if isinstance(source, Slide):
        return _run(model, source, region, stride, None, min_tissue, batch_size, device,
                    progress, cancel, slide_vectors(source) if model.stain != "rgb" else None)
    with open_slide(source, mpp=slide_mpp) as slide:
        return _run(model, slide, region, stride, None, min_tissue, batch_size, device,
                    progress, cancel, slide_vectors(slide) if model.stain != "rgb" else None)


def _run(model: MitosisModel, src, region, stride, mpp, min_tissue, batch_size, device,
         progress, cancel, vectors) -> Detection:
    tile = model.tile
    mpp = mpp or float(model.card.get("mpp") or src.mpp)
    if vectors is None and model.stain != "rgb":
        from magnipath.stain import REFERENCE_VECTORS, StainError, macenko_vectors

        try:
            vectors = macenko_vectors(src.rgb)
        except (StainError, AttributeError):
            vectors = REFERENCE_VECTORS
    d = mpp / src.mpp
    if d < 1 - 1e-3:
        where = getattr(src, "path", "the image")
        raise MitosisError(
            f"{where}: level 0 is {src.mpp:.4g} µm/px ({getattr(src, 'mpp_source', 'given')}), "
            f"coarser than the {mpp:.4g} µm/px the model was trained at; mitoses cannot be "
            "found in upsampled pixels. Use a finer scan or a model trained at this "
            "resolution, and check the slide's mpp (an estimated one can be a class off).")
    region = region or (0.0, 0.0, float(src.width), float(src.height))
    step = (stride or tile) * d
    boxes = grid_boxes(region, tile * d, step)
    nx = 1 if region[2] <= tile * d else 1 + int(np.ceil((region[2] - tile * d) / step - 1e-9))
    heat = np.full(len(boxes), np.nan, np.float32)
    todo = np.flatnonzero(_maybe_tissue(src, boxes))
    chunk = max(batch_size, 1)
    for s in range(0, len(todo), chunk):
        check_cancel(cancel)
        idx = todo[s:s + chunk]
        imgs = np.stack([src.read_region(tuple(b), mpp=mpp, out_shape=(tile, tile))
                         for b in boxes[idx]])
        tissue = np.mean(np.any(imgs <= GLASS, axis=-1), axis=(1, 2)) >= min_tissue
        if tissue.any():
            heat[idx[tissue]] = model.predict(imgs[tissue], vectors, device=device)
        report(progress, "mitosis/detect", min(s + chunk, len(todo)), len(todo))
    ok = np.isfinite(heat)
    source = getattr(src, "mpp_source", None)  # a Slide; arrays have no level 0 of their own
    return Detection(heat.reshape(-1, nx), (float(region[0]), float(region[1])), float(step),
                     float(tile * d), boxes[ok], heat[ok], 0.5, mpp,
                     float(src.mpp) if source is not None else None, source)


def _maybe_tissue(src, boxes: np.ndarray) -> np.ndarray:
    """Boxes with any tissue on a coarse thumbnail (all True for arrays and small regions).

    Glass is most of a whole slide; this skips reading its tiles at full resolution.
    """
    if not hasattr(src, "thumbnail") or len(boxes) < 64:
        return np.ones(len(boxes), bool)
    side = float(boxes[0, 2])
    thumb_mpp = max(src.mpp, side * src.mpp / 4.0)  # about 4 thumbnail px per tile side
    thumb = src.thumbnail(thumb_mpp)
    tissue = np.any((thumb <= GLASS + 15) & (thumb > 0), axis=-1)  # lenient: averaged edges
    f = src.mpp / thumb_mpp  # thumbnail px per level-0 px
    h, w = tissue.shape
    out = np.zeros(len(boxes), bool)
    for i, (x, y, bw, bh) in enumerate(boxes):
        r0, c0 = max(int(y * f) - 1, 0), max(int(x * f) - 1, 0)
        r1, c1 = min(int((y + bh) * f) + 2, h), min(int((x + bw) * f) + 2, w)
        out[i] = r1 > r0 and c1 > c0 and bool(tissue[r0:r1, c0:c1].any())
    return out
