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

from magnipath.magnification._core import MagnificationError
from magnipath.magnification._predict import MagnificationModel, load_model
from magnipath.progress import CancelCallback, ProgressCallback

ESTIMATED = "estimated"
"""First word of every ``mpp_source`` that is an estimate (``"estimated (physical)"``...)."""


def estimate_source(method: str | None, model: str | os.PathLike | MagnificationModel |
                    None = None) -> str:
    """The ``mpp_source`` label of an estimate: ``"estimated (physical)"``,
    ``"estimated (physical+fusion, model NAME)"``.

    Parameters
    ----------
    method : str or None
        The ``method`` of the estimate: ``"physical"``, ``"physical+fusion"``,
        ``"fusion"`` or ``"baseline"``.
    model : path or MagnificationModel, optional
        The model folder that answered (its name is shown).
    """
    if isinstance(model, MagnificationModel):
        model = model.path
    if model is None or method in ("baseline", "physical"):
        return f"{ESTIMATED} ({method or 'physical'})"
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
                MagnificationModel | None = None, *, method: str = "physical",
                n_tiles: int = 16, seed: int = 0, device: str = "cpu",
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> tuple[float | None, dict]:
    """An *estimate* of a slide's level-0 µm/px from its pixels, for slides without mpp.

    The same code path as :func:`~magnipath.magnification.estimate`
    (:func:`~magnipath.magnification._regions.estimate_regions`): a slide of at
    most 2048 x 2048 level-0 px is read whole, so it gets exactly the answer
    ``estimate`` gives for the same pixels; larger slides give the 1024 px
    level-0 blocks with the most tissue (measured on the coarsest level).

    Parameters
    ----------
    method : {"physical", "baseline"}
        Without a model: nucleus sizes in µm (default) or Otálora's baseline.
    n_tiles : int
        Most 224 px tiles the model or the baseline vote with.
    seed : int
        Unused (kept for callers; the blocks are chosen deterministically).

    Returns
    -------
    (float or None, dict)
        The estimated mpp (``10 / magnification``; None when nothing could be
        estimated) and the details: everything ``estimate`` returns, plus
        ``file_mpp`` (the metadata's value, None when absent), ``source:
        "estimate"``, ``mpp_source`` (:func:`estimate_source`, e.g.
        ``"estimated (physical)"``) and ``region_boxes`` (level-0 px). Pass the
        mpp to ``open_slide(path, mpp=...)`` only after checking it.
    """
    from magnipath._errors import SlideError
    from magnipath.magnification._regions import estimate_regions
    from magnipath.slide import open_slide

    del seed
    known: float | None
    try:
        with open_slide(slide_path) as s:
            known = s.mpp
    except SlideError:
        known = None
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    with open_slide(slide_path, mpp=known or 1.0) as slide:
        regions, boxes = _slide_regions(slide)
    res = estimate_regions(regions, model, method=method, boxes=boxes, max_tiles=n_tiles,
                           progress=progress, cancel=cancel)
    res.update(source="estimate", file_mpp=known, n_regions=len(boxes),
               mpp_source=estimate_source(res.get("method"), model),
               region_boxes=[list(b) for b in boxes])
    if res["mpp_estimate"] is None:
        res["note"] = f"nothing to estimate from: {res.get('cannot_estimate', 'no estimate')}"
    return res["mpp_estimate"], res


@dataclass(frozen=True)
class MppEstimate:
    """A request to estimate a slide's level-0 mpp from its pixels when its file has none.

    What ``--mpp estimate`` (physical) or ``--mpp estimate:MODEL_DIR`` asks for on
    the command line. A slide whose metadata gives an mpp keeps it.

    Attributes
    ----------
    model : Path or None
        A magnification model folder (``magnipath magnification train``); ``None``:
        the physical estimate (nucleus sizes, no training).
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
                                     "write 'estimate' alone for the physical estimate")
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
            (``"estimated (physical)"``...) and :func:`suggest_mpp`'s details.

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
                                     "'estimate' alone for the physical estimate")
        mpp, details = suggest_mpp(slide_path, self.model, n_tiles=self.n_tiles,
                                   device=self.device, progress=progress, cancel=cancel)
        if mpp is None:
            raise MagnificationError(
                f"{slide_path}: the file has no mpp and none could be estimated from its "
                f"pixels ({details.get('note', 'no estimate')}); give the scan resolution "
                "with a number, e.g. 0.25 (40x) or 0.5 (20x)")
        return mpp, details["mpp_source"], details


def _slide_regions(slide) -> tuple[list[np.ndarray], list]:
    """Level-0 regions of a slide for :func:`estimate_regions` (see its module docstring)."""
    from magnipath.magnification._regions import block_boxes, pick_blocks

    boxes = block_boxes(slide.width, slide.height)
    if len(boxes) == 1:
        return [slide.read_level(0, 0, 0, slide.height, slide.width)], boxes
    lv = slide.levels[-1]
    if lv.shape[0] * lv.shape[1] > 4096 * 4096:
        raise MagnificationError(f"{slide.path}: the coarsest level is {lv.shape[1]} x "
                                 f"{lv.shape[0]} px; a slide without a pyramid this large "
                                 "cannot be sampled; crop a region and use estimate().")
    thumb = slide.read_level(lv.index, 0, 0, *lv.shape)
    tissue = np.any((thumb <= 215) & (thumb > 0), axis=-1)
    ds = lv.downsample
    frac = []
    for x, y, w, h in boxes:
        t = tissue[int(y / ds):max(int(y / ds) + 1, int((y + h) / ds)),
                   int(x / ds):max(int(x / ds) + 1, int((x + w) / ds))]
        frac.append(float(t.mean()) if t.size else 0.0)
    pick = pick_blocks(boxes, frac)
    chosen = [boxes[i] for i in pick]
    return [slide.read_level(0, y, x, h, w) for x, y, w, h in chosen], chosen


def resolve_slide_mpp(option: float | MppEstimate | None, slide: str | os.PathLike,
                      progress: ProgressCallback | None = None) -> tuple[float | None, dict]:
    """The level-0 µm/px to open ``slide`` with, from an :func:`mpp_option` value.

    Returns
    -------
    (float or None, dict)
        ``(None, {})`` without an option (the file's own mpp is used);
        ``(value, {"mpp": value, "mpp_source": "override"})`` for a number; for
        ``estimate[:MODEL_DIR]``: ``(None, {})`` when the file gives an mpp (it is
        kept), else the estimate and what to record about it (``mpp``,
        ``mpp_source`` such as ``"estimated (physical)"``, ``mpp_estimate``).
    """
    if option is None:
        return None, {}
    if isinstance(option, float):
        return option, {"mpp": option, "mpp_source": "override"}
    mpp, source, details = option.resolve(slide, progress=progress)
    if details is None:  # the file gives one: no estimate needed
        return None, {}
    return mpp, {"mpp": mpp, "mpp_source": source,
                 "mpp_estimate": {k: details.get(k) for k in
                                  ("magnification", "method", "votes", "n_tiles", "note",
                                   "disagreement")}}


def mpp_option(text: str) -> float | MppEstimate:
    """argparse type of an mpp option: a number of µm/px, or ``estimate[:MODEL_DIR]``.

    Raises :class:`argparse.ArgumentTypeError` for anything else, so argparse
    reports it as a usage error.

    Returns
    -------
    float or MppEstimate
        The number (> 0), or an :class:`MppEstimate` request (the physical
        estimate, or the model folder after the colon).
    """
    import argparse

    from magnipath._errors import MagnipathError

    try:
        request = MppEstimate.parse(text)
    except MagnipathError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if request is not None:
        return request
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give µm per pixel (0.25 = 40x, 0.5 = 20x), or 'estimate' / "
            "'estimate:MODEL_DIR' to estimate it from the pixels of slides without one")
    return value
