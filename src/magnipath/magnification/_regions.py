"""One code path from pixels to an estimate, for images (``estimate``) and slides (``suggest_mpp``).

Both callers hand over *regions* of level-0 pixels; :func:`estimate_regions`
answers. An image or slide of at most :data:`MAX_PIXELS` is one region, all its
pixels, so a slide and an image holding the same pixels get the same answer.
Larger ones are cut into blocks of :data:`BLOCK` px on a grid from the origin
and the :data:`N_BLOCKS` with the most tissue are read (for a slide the tissue
is measured on its coarsest level, for an image on the block itself).

Why ``estimate`` and ``suggest-mpp`` used to differ on the same pixels:
``estimate`` voted over 224 px tiles on a grid centred in the image (tissue
fraction >= 0.3, the 16 with most tissue), ``suggest_mpp`` over 224 px tiles on
a grid from the slide origin (tissue fraction >= 0.5 on the thumbnail, 16 drawn
at random): different tiles, and the per-tile baseline (mean Otsu blob area ->
calibration table) depends on which nuclei a tile cuts, so the votes differed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from magnipath.magnification._core import MAGNIFICATIONS, PATCH, closest_magnification
from magnipath.magnification._physical import (
    PhysicalEstimate,
    estimate_from_blobs,
    searched_blobs,
)
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

MAX_PIXELS = 2048 * 2048
"""Inputs of at most this many pixels are analysed whole."""

BLOCK = 1024
"""Side of the blocks (px) of larger inputs."""

N_BLOCKS = 4
"""Blocks with the most tissue that are analysed in larger inputs."""

METHODS = ("physical", "baseline")
"""``physical``: nucleus sizes in µm (default, no training); ``baseline``: Otálora's
Otsu mean-area baseline with its synthetic calibration table."""

AGREE_RATIO = 1.25
"""A model's estimate and the physical one agree when their magnifications differ by at
most this factor (about one class step of 5, 8, 10, 15, 20, 30, 40x)."""


def block_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` (level-0 px) of the analysis grid; one box when small enough."""
    if width * height <= MAX_PIXELS:
        return [(0, 0, int(width), int(height))]
    nx, ny = max(1, width // BLOCK), max(1, height // BLOCK)
    bw, bh = min(BLOCK, width), min(BLOCK, height)
    return [(c * BLOCK, r * BLOCK, bw, bh) for r in range(ny) for c in range(nx)]


def pick_blocks(boxes: Sequence[tuple[int, int, int, int]],
                fractions: Sequence[float]) -> list[int]:
    """Indices of up to :data:`N_BLOCKS` boxes with the most tissue (ties: grid order)."""
    f = np.asarray(fractions, float)
    order = np.argsort(-f, kind="stable")
    good = [int(i) for i in order if f[i] > 0.05][:N_BLOCKS]
    return sorted(good or [int(order[0])])


def tissue_fraction(rgb: np.ndarray, glass: int = 215) -> float:
    """Fraction of pixels darker than glass in at least one channel."""
    return float(np.mean(np.any(np.asarray(rgb) <= glass, axis=-1)))


def image_regions(img: np.ndarray) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """The regions of an in-memory image (see the module docstring) and their boxes."""
    h, w = img.shape[:2]
    boxes = block_boxes(w, h)
    if len(boxes) == 1:
        return [img], boxes
    fr = [tissue_fraction(img[y:y + bh, x:x + bw]) for x, y, bw, bh in boxes]
    pick = pick_blocks(boxes, fr)
    return [img[boxes[i][1]:boxes[i][1] + boxes[i][3], boxes[i][0]:boxes[i][0] + boxes[i][2]]
            for i in pick], [boxes[i] for i in pick]


def physical_regions(regions: Sequence[np.ndarray], *,
                     progress: ProgressCallback | None = None,
                     cancel: CancelCallback | None = None) -> PhysicalEstimate:
    """The physical estimate from the nuclei of all regions pooled.

    When the pooled nuclei are small every region is searched again on its enlarged
    haematoxylin channel (:func:`~magnipath.magnification._physical.searched_blobs`).
    """
    def each(i: int, n: int) -> None:
        report(progress, "magnification/nuclei", i, n)
        check_cancel(cancel)

    check_cancel(cancel)
    return estimate_from_blobs(searched_blobs(regions, each=each))


def _patches(regions: Sequence[np.ndarray], origins: Sequence[tuple[int, int]], mode: str,
             max_tiles: int, patch: int) -> tuple[np.ndarray, list, str]:
    from magnipath.magnification._predict import image_patches

    ps, bs, used = [], [], "center"
    per = max(1, math.ceil(max_tiles / len(regions)))
    for r, (ox, oy) in zip(regions, origins, strict=True):
        p, b, used = image_patches(r, mode=mode, max_tiles=per, patch=patch)
        ps.append(p)
        bs += [(x + ox, y + oy, w, h) for x, y, w, h in b]
    return np.concatenate(ps)[:max_tiles], bs[:max_tiles], used


def estimate_regions(regions: Sequence[np.ndarray], model=None, *, method: str = "physical",
                     boxes: Sequence[tuple[int, int, int, int]] | None = None,
                     mode: str = "auto", max_tiles: int = 16, alpha: float | None = None,
                     tta: bool = True, progress: ProgressCallback | None = None,
                     cancel: CancelCallback | None = None) -> dict:
    """The image-level estimate of regions of level-0 pixels of one image or slide.

    Parameters
    ----------
    regions : sequence of numpy.ndarray
        ``(y, x, 3)`` uint8 RGB regions at the image's own pixel size.
    model : MagnificationModel, optional
        A CNN fusion model; its answer is combined with the physical estimate
        only where the two agree (within :data:`AGREE_RATIO`), otherwise the
        physical one is given and the disagreement reported.
    method : {"physical", "baseline"}
        Without a model: the physical estimate (default) or Otálora's baseline.
    boxes : sequence of (x, y, w, h), optional
        Where the regions lie in the image or slide (level-0 px); default each at (0, 0).

    Returns
    -------
    dict
        ``magnification`` (class, None when nothing can be estimated),
        ``magnification_continuous``, ``mpp_estimate`` (µm/px), ``method``,
        ``is_estimate`` (True), ``physical`` (:class:`PhysicalEstimate` as a
        dict), ``cannot_estimate`` (the reason, when there is no answer),
        ``disagreement`` (when the model and the physical estimate differ), and
        for the model or baseline the per-tile details of
        :func:`~magnipath.magnification.summarise`; ``tile_boxes`` (what was
        looked at, ``(x, y, w, h)`` in the frame of ``boxes``: the 224 px tiles of
        the model or baseline, else the regions) and ``n_tiles``.
    """
    from magnipath.magnification._core import MagnificationError
    from magnipath.magnification._predict import NOTE, predict_patches, summarise

    if method not in METHODS:
        raise MagnificationError(f"method {method!r}: choose one of {', '.join(METHODS)}.")
    if not regions:
        raise MagnificationError("no pixels to estimate from.")
    origins = [(0, 0)] * len(regions) if boxes is None else [(b[0], b[1]) for b in boxes]
    res: dict = {"is_estimate": True, "note": NOTE, "classes": list(MAGNIFICATIONS),
                 "tile_boxes": [[*o, r.shape[1], r.shape[0]] for o, r in zip(origins, regions,
                                                                              strict=True)]}
    res["n_tiles"] = len(res["tile_boxes"])
    if model is None and method == "baseline":
        patches, tiles, used = _patches(regions, origins, mode, max_tiles, PATCH)
        res.update(summarise(predict_patches(patches, None, tta=False, progress=progress,
                                             cancel=cancel)))
        res.update(mode=used, n_tiles=len(tiles), tile_boxes=[list(t) for t in tiles],
                   tta=False)
        if res["mpp_estimate"] is None:
            res["cannot_estimate"] = "no nuclei found by the baseline"
        return res
    phys = physical_regions(regions, progress=progress, cancel=cancel)
    res["physical"] = phys.to_dict()
    if model is None:
        return _answer(res, phys.magnification, "physical", phys.reason)
    size = int(model.card.get("patch", PATCH))
    patches, tiles, used = _patches(regions, origins, mode, max_tiles, size)
    cnn = summarise(predict_patches(patches, model, alpha=alpha, tta=tta, progress=progress,
                                    cancel=cancel))
    res.update({k: v for k, v in cnn.items()
                if k in ("direct", "area", "fusion", "baseline", "votes")})
    res.update(mode=used, n_tiles=len(tiles), tile_boxes=[list(t) for t in tiles],
               tta=bool(tta))
    return combine(res, phys, cnn.get("magnification_continuous"))


def combine(res: dict, phys: PhysicalEstimate, m_cnn: float | None) -> dict:
    """Fill ``res`` with the answer from the physical estimate and a model's magnification.

    Combined (geometric mean, ``method: "physical+fusion"``) only when both exist
    and differ by at most :data:`AGREE_RATIO`; otherwise the physical answer with
    ``disagreement``, or the model's alone flagged ``unchecked`` when the physical
    estimate has none.
    """
    if not phys.ok:
        res["unchecked"] = (f"the physical estimate is unavailable ({phys.reason}); the model's "
                            "answer alone is given")
        return _answer(res, m_cnn, "fusion", None)
    if m_cnn is None or not np.isfinite(m_cnn) or m_cnn <= 0:
        res["disagreement"] = {
            "physical": phys.magnification, "fusion": None if m_cnn is None else float(m_cnn),
            "note": (f"the model gives no usable magnification ({m_cnn}); the physical "
                     "estimate is given")}
        return _answer(res, phys.magnification, "physical", None)
    ratio = phys.magnification / m_cnn
    if max(ratio, 1 / ratio) <= AGREE_RATIO:
        return _answer(res, math.sqrt(phys.magnification * m_cnn), "physical+fusion", None)
    res["disagreement"] = {
        "physical": phys.magnification, "fusion": float(m_cnn),
        "note": (f"the model says {m_cnn:.3g}x, the nucleus sizes {phys.magnification:.3g}x; "
                 "they disagree, so the physical estimate is given (a model trained on "
                 "other tissue or scanners can be wrong here)")}
    return _answer(res, phys.magnification, "physical", None)


def _answer(res: dict, magnification: float | None, method: str, reason: str | None) -> dict:
    res["method"] = method
    if magnification is None or not np.isfinite(magnification) or magnification <= 0:
        res.update(magnification=None, magnification_continuous=None, mpp_estimate=None,
                   cannot_estimate=reason or "no estimate")
        return res
    res.update(magnification=float(closest_magnification(magnification)),
               magnification_continuous=float(magnification),
               mpp_estimate=10.0 / float(magnification))
    return res

