"""Estimating the level-0 resolution of a slide whose metadata has no mpp."""

from __future__ import annotations

import os

import numpy as np

from magnipath.magnification._core import PATCH, MagnificationError
from magnipath.magnification._predict import (
    MagnificationModel,
    load_model,
    predict_patches,
    summarise,
)
from magnipath.progress import CancelCallback, ProgressCallback


def suggest_mpp(slide_path: str | os.PathLike, model: str | os.PathLike |
                MagnificationModel | None = None, *, n_tiles: int = 16, seed: int = 0,
                device: str = "cpu", progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> tuple[float | None, dict]:
    """An *estimate* of a slide's level-0 µm/px from its pixels, for slides without mpp.

    Reads up to ``n_tiles`` tissue tiles of 224 px at level 0 (chosen on the
    coarsest level) and runs :func:`estimate`'s vote on them.

    Returns
    -------
    (float or None, dict)
        The estimated mpp (``10 / magnification``; None when nothing could be
        estimated) and the details: everything :func:`summarise` returns, plus
        ``file_mpp`` (the metadata's value, None when absent) and ``source:
        "estimate"``. Pass the mpp to ``open_slide(path, mpp=...)`` only after
        checking it.
    """
    from magnipath._errors import SlideError
    from magnipath.slide import open_slide

    file_mpp: float | None
    try:
        with open_slide(slide_path) as s:
            file_mpp = s.mpp
    except SlideError:
        file_mpp = None
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    size = int(model.card.get("patch", PATCH)) if model is not None else PATCH
    with open_slide(slide_path, mpp=file_mpp or 1.0) as slide:
        patches, boxes = _slide_tiles(slide, size, n_tiles, seed)
    if not len(patches):
        return None, {"is_estimate": True, "source": "estimate", "file_mpp": file_mpp,
                      "note": "no tissue tile found; nothing to estimate from"}
    pred = predict_patches(patches, model, progress=progress, cancel=cancel)
    res = summarise(pred)
    res.update(source="estimate", file_mpp=file_mpp, n_tiles=len(boxes),
               tile_boxes=[list(b) for b in boxes])
    return res["mpp_estimate"], res


def _slide_tiles(slide, size: int, n: int, seed: int) -> tuple[np.ndarray, list]:
    """Up to ``n`` level-0 tiles of ``size`` px with the most tissue (coarsest level picks)."""
    lv = slide.levels[-1]
    if lv.shape[0] * lv.shape[1] > 4096 * 4096:
        raise MagnificationError(f"{slide.path}: the coarsest level is {lv.shape[1]} x "
                                 f"{lv.shape[0]} px; a slide without a pyramid this large "
                                 "cannot be sampled; crop a region and use estimate().")
    thumb = slide.read_level(lv.index, 0, 0, *lv.shape)
    tissue = np.any((thumb <= 215) & (thumb > 0), axis=-1)
    ny, nx = slide.height // size, slide.width // size
    if ny * nx == 0:
        return np.zeros((0, size, size, 3), np.uint8), []
    ds = lv.downsample
    frac = np.zeros((ny, nx))
    for r in range(ny):
        r0, r1 = int(r * size / ds), max(int(r * size / ds) + 1, int((r + 1) * size / ds))
        for c in range(nx):
            c0, c1 = int(c * size / ds), max(int(c * size / ds) + 1, int((c + 1) * size / ds))
            frac[r, c] = tissue[r0:r1, c0:c1].mean() if tissue[r0:r1, c0:c1].size else 0.0
    cand = np.flatnonzero(frac.ravel() >= 0.5)
    if cand.size == 0:
        cand = np.argsort(-frac.ravel())[:n]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(cand, size=min(n, cand.size), replace=False))
    boxes = [(int(k % nx) * size, int(k // nx) * size, size, size) for k in pick]
    tiles = np.stack([slide.read_level(0, y, x, size, size) for x, y, _, _ in boxes])
    return tiles, boxes
