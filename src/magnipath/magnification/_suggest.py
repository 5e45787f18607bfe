"""Estimating the level-0 resolution of a slide whose metadata has no mpp.

:func:`suggest_mpp` answers for one slide; :class:`MppEstimate` is the request
``--mpp estimate[:MODEL_DIR]`` of the command line: use the file's mpp where
there is one, else the estimate, and say which (:data:`ESTIMATED`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magnipath.magnification._core import PATCH, MagnificationError
from magnipath.magnification._predict import (
    MagnificationModel,
    load_model,
    predict_patches,
    summarise,
)
from magnipath.progress import CancelCallback, ProgressCallback

ESTIMATED = "estimated"
"""First word of every ``mpp_source`` that is an estimate (``"estimated (baseline)"``...)."""


def estimate_source(method: str | None, model: str | os.PathLike | MagnificationModel |
                    None = None) -> str:
    """The ``mpp_source`` label of an estimate: ``"estimated (baseline)"``,
    ``"estimated (fusion, model NAME)"``.

    Parameters
    ----------
    method : str or None
        The ``method`` of the estimate (:func:`summarise`): ``"fusion"`` or ``"baseline"``.
    model : path or MagnificationModel, optional
        The model folder that answered (its name is shown).
    """
    if isinstance(model, MagnificationModel):
        model = model.path
    if model is None or method == "baseline":
        return f"{ESTIMATED} ({method or 'baseline'})"
    return f"{ESTIMATED} ({method}, model {Path(model).name})"


def file_mpp(slide_path: str | os.PathLike, backend: str = "auto") -> float | None:
    """The level-0 µm/px the slide's metadata gives, or ``None`` when it gives none.

    Raises
    ------
    SlideError
        When the slide cannot be read at all (missing, corrupt...): only a
        missing resolution gives ``None``.
    """
    from magnipath._errors import SlideError
    from magnipath.slide import open_slide

    try:
        with open_slide(slide_path, backend=backend) as s:  # type: ignore[arg-type]
            return s.mpp
    except SlideError:
        with open_slide(slide_path, mpp=1.0, backend=backend):  # type: ignore[arg-type]
            return None  # readable with an mpp given: only the resolution is missing


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
        ``file_mpp`` (the metadata's value, None when absent), ``source:
        "estimate"`` and ``mpp_source`` (:func:`estimate_source`, e.g.
        ``"estimated (baseline)"``). Pass the mpp to ``open_slide(path, mpp=...)``
        only after checking it.
    """
    from magnipath._errors import SlideError
    from magnipath.slide import open_slide

    known: float | None
    try:
        with open_slide(slide_path) as s:
            known = s.mpp
    except SlideError:
        known = None
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    size = int(model.card.get("patch", PATCH)) if model is not None else PATCH
    with open_slide(slide_path, mpp=known or 1.0) as slide:
        patches, boxes = _slide_tiles(slide, size, n_tiles, seed)
    if not len(patches):
        return None, {"is_estimate": True, "source": "estimate", "file_mpp": known,
                      "mpp_source": estimate_source(None if model is None else "fusion", model),
                      "note": "no tissue tile found; nothing to estimate from"}
    pred = predict_patches(patches, model, progress=progress, cancel=cancel)
    res = summarise(pred)
    res.update(source="estimate", file_mpp=known, n_tiles=len(boxes),
               mpp_source=estimate_source(res.get("method"), model),
               tile_boxes=[list(b) for b in boxes])
    if res["mpp_estimate"] is None:
        res["note"] = "no nuclei found in the tissue tiles; nothing to estimate from"
    return res["mpp_estimate"], res


@dataclass(frozen=True)
class MppEstimate:
    """A request to estimate a slide's level-0 mpp from its pixels when its file has none.

    What ``--mpp estimate`` (baseline) or ``--mpp estimate:MODEL_DIR`` asks for on
    the command line. A slide whose metadata gives an mpp keeps it.

    Attributes
    ----------
    model : Path or None
        A magnification model folder (``magnipath magnification train``); ``None``:
        the non-learning baseline.
    n_tiles : int
        Tissue tiles of 224 px that vote.
    device : str
        Torch device of the model.
    """

    model: Path | None = None
    n_tiles: int = 16
    device: str = "cpu"

    @classmethod
    def parse(cls, text: str) -> MppEstimate | None:
        """``"estimate"`` or ``"estimate:MODEL_DIR"`` as a request; ``None`` for other text."""
        word, sep, rest = str(text).strip().partition(":")
        if word.lower() != "estimate":
            return None
        if sep and not rest.strip():
            raise MagnificationError(f"{text!r}: give the model folder after 'estimate:', or "
                                     "write 'estimate' alone for the baseline")
        return cls(model=Path(rest.strip()).expanduser() if rest.strip() else None)

    def resolve(self, slide_path: str | os.PathLike, *,
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> tuple[float, str, dict | None]:
        """The level-0 µm/px to use for a slide, with where it came from.

        Returns
        -------
        (float, str, dict or None)
            The file's mpp with source ``"file"`` and no details; or, when the
            file has none, the estimate, its ``mpp_source``
            (``"estimated (baseline)"``...) and :func:`suggest_mpp`'s details.

        Raises
        ------
        MagnificationError
            When the file has no mpp and nothing can be estimated from its pixels.
        SlideError
            When the slide cannot be read.
        """
        known = file_mpp(slide_path)
        if known is not None:
            return known, "file", None
        if self.model is not None and not Path(self.model).is_dir():
            raise MagnificationError(f"estimate:{self.model}: no such model folder; train one "
                                     "with 'magnipath magnification train', or write "
                                     "'estimate' alone for the baseline")
        mpp, details = suggest_mpp(slide_path, self.model, n_tiles=self.n_tiles,
                                   device=self.device, progress=progress, cancel=cancel)
        if mpp is None:
            raise MagnificationError(
                f"{slide_path}: the file has no mpp and none could be estimated from its "
                f"pixels ({details.get('note', 'no estimate')}); give the scan resolution "
                "with a number, e.g. 0.25 (40x) or 0.5 (20x)")
        return mpp, details["mpp_source"], details


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
