"""Pixels on glass get the fill label after the model (``InferConfig.glass_background``).

The window-level tissue mask skips windows without tissue, but a window on the
tissue's edge is predicted whole, glass included, and a model can call white
glass fat (both are white; fat only has thin membranes). With
``glass_background`` the pixels the tissue mask (:mod:`magnipath.tissue`) calls
glass are set to the fill label ("Background") once the model has run. Holes
enclosed by tissue (fat lobules, lumina) are tissue for the mask, so the model
still decides there.
"""

from __future__ import annotations

import numpy as np


def relabel_glass(labels, mask, origin: tuple[float, float], downsample: float,
                  fill: int, chunk: int) -> int:
    """Set the pixels of ``labels`` outside the tissue ``mask`` to ``fill``, chunk by chunk.

    Parameters
    ----------
    labels : zarr.Array
        ``(rows, cols)`` uint8 label map; pixel ``(i, j)`` covers level-0
        ``[x0 + j*downsample, x0 + (j+1)*downsample)`` x the same in y.
    mask : magnipath.tissue.TissueMask
        Tissue mask of the slide (its cells are squares of ``mask.downsample`` level-0 px).
    origin : (float, float)
        Level-0 ``(x0, y0)`` of the label map's first pixel.
    downsample : float
        Level-0 pixels per label pixel.
    fill : int
        Label of glass (the "Background" class, else the ignore index).
    chunk : int
        Rows and columns processed at a time.

    Returns
    -------
    int
        Pixels changed.
    """
    rows, cols = labels.shape
    changed = 0
    for r0 in range(0, rows, chunk):
        r1 = min(r0 + chunk, rows)
        for c0 in range(0, cols, chunk):
            c1 = min(c0 + chunk, cols)
            glass = ~mask.at_pixels((origin[0] + c0 * downsample, origin[1] + r0 * downsample),
                                    downsample, (r1 - r0, c1 - c0))
            if not glass.any():
                continue
            block = np.asarray(labels[r0:r1, c0:c1])
            hit = glass & (block != fill)
            if hit.any():
                block[hit] = fill
                labels[r0:r1, c0:c1] = block
                changed += int(hit.sum())
    return changed
