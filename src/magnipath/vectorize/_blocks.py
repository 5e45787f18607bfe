"""Per-block preparation: the probability layout and prefix sums."""

from __future__ import annotations

from typing import Any

import numpy as np


def probability_layout(probabilities: Any, shape: tuple[int, int]) -> str:
    """``"cyx"``, ``"yxc"`` or ``"yx"`` for a probability array matching ``shape``.

    Raises ``ValueError`` (the caller turns it into a user error) otherwise.
    """
    pshape = tuple(probabilities.shape)
    if len(pshape) == 3 and pshape[1:] == shape:
        return "cyx"
    if len(pshape) == 3 and pshape[:2] == shape:
        return "yxc"
    if len(pshape) == 2 and pshape == shape:
        return "yx"
    raise ValueError(f"probabilities of shape {pshape} match neither (C, y, x), (y, x, C) nor "
                     f"(y, x) for labels of shape {shape}")


def row_prefix(probabilities: Any, layout: str, block: np.ndarray,
               rows: slice, cols: slice) -> np.ndarray:
    """Exclusive row prefix sums of each pixel's own-class probability, ``(h, w + 1)``.

    uint8 probabilities are summed exactly as integers (0..255), floats in float64.
    """
    if layout == "cyx":
        p = np.asarray(probabilities[:, rows, cols])
        idx = np.clip(block, 0, p.shape[0] - 1).astype(np.intp)
        q = np.take_along_axis(p, idx[None], 0)[0]
    elif layout == "yxc":
        p = np.asarray(probabilities[rows, cols, :])
        idx = np.clip(block, 0, p.shape[2] - 1).astype(np.intp)
        q = np.take_along_axis(p, idx[..., None], 2)[..., 0]
    else:
        q = np.asarray(probabilities[rows, cols])
    acc = np.uint64 if q.dtype == np.uint8 else np.float64
    out = np.zeros((q.shape[0], q.shape[1] + 1), dtype=acc)
    np.cumsum(q, axis=1, dtype=acc, out=out[:, 1:])
    return out
