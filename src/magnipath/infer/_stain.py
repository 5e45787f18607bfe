"""Stain normalisation at inference (``--normalise-stain``): the slide's stain -> the model's.

The model card holds the stain reference of the training tiles
(``card.normalisation["stain_reference"]``, written by :func:`magnipath.train.train`).
The slide's own reference is measured on the target inputs of up to 32 tissue
windows spread evenly over the run (its stain vectors on level-0 patches centred in
them when the model's were read at full resolution too, see :mod:`magnipath.stainnorm`),
and one fixed :class:`~magnipath.stainnorm.StainNormaliser` then maps every input of
every window.
"""

from __future__ import annotations

import numpy as np

from magnipath.infer._config import InferError
from magnipath.stain import StainError
from magnipath.stainnorm import (
    StainNormaliser,
    StainReference,
    full_resolution_patches,
    measure_reference,
)

MAX_WINDOWS = 32


def slide_normaliser(reader, windows: np.ndarray, keep: np.ndarray, card,
                     slide_name: str) -> tuple[StainNormaliser, dict]:
    """The normaliser of one slide and a JSON-ready record of it.

    Parameters
    ----------
    reader : WindowReader
        Reads window inputs (uint8, target first).
    windows : numpy.ndarray
        ``(N, 2)`` window corners (row, col) of the run, output pixels.
    keep : numpy.ndarray
        ``(N,)`` bool: windows with tissue.
    card : ModelCard
    slide_name : str
        For error messages.

    Raises
    ------
    InferError
        The model card has no stain reference, or the slide too little stained tissue.
    """
    ref = (card.normalisation or {}).get("stain_reference")
    if not ref:
        raise InferError("--normalise-stain: the model card has no stain reference (models "
                         "trained before it was recorded); retrain the model or run without "
                         "--normalise-stain")
    try:
        target = StainReference.from_dict(ref)
    except StainError as e:
        raise InferError(f"--normalise-stain: the model card's {e}; retrain the model") from e
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        idx = np.arange(len(windows))
    pick = idx[np.linspace(0, len(idx) - 1, min(MAX_WINDOWS, len(idx))).round().astype(int)]
    vector_images, vector_mpp = None, None
    if target.vector_mpp is not None:  # read as the model's were: on level-0 pixels
        vector_images = full_resolution_patches(
            reader.slide, [reader.target_box(int(windows[i][0]), int(windows[i][1]))
                           for i in pick])
        vector_mpp = float(reader.slide.mpp)
    try:
        source = measure_reference((reader.read(int(windows[i][0]), int(windows[i][1]))[0]
                                    for i in pick), vector_images=vector_images,
                                   vector_mpp=vector_mpp)
    except StainError as e:
        raise InferError(f"{slide_name}: --normalise-stain cannot measure the slide's stain "
                         f"({e}); run without --normalise-stain") from e
    info = {"slide_reference": source.to_dict(), "model_reference": target.to_dict(),
            "windows_sampled": len(pick)}
    return StainNormaliser(source, target), info
