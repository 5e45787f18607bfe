"""Where MagniPath's layers sit in napari's world: µm, with pixel centres done right.

napari puts the *centre* of data pixel ``i`` at data coordinate ``i``; QuPath
and MagniPath put the *edge* of level-0 pixel ``i`` at level-0 coordinate
``i`` (pixel ``i`` covers ``[i, i + 1)``). With ``m`` the slide's µm per
level-0 pixel (1 when unknown: world units are then level-0 pixels):

* slide image (level 0): ``scale = (m, m)``, ``translate = 0``; image pixel
  ``i`` is centred on world ``i * m``, so level-0 coordinate ``x`` is world
  ``(x - 0.5) * m``;
* vector layers (Shapes / Points) hold level-0 coordinates as data:
  ``scale = (m, m)``, ``translate = (-m / 2, -m / 2)``;
* rasters whose pixel ``(r, c)`` covers level-0 ``[c d, (c + 1) d)`` (tissue
  masks, label maps at downsample ``d``): ``scale = (d m, d m)``,
  ``translate = ((d - 1) m / 2, ...)``.

So a polygon read from QuPath lies exactly on the pixels it covers, at every
zoom, and layers of different slides line up in µm.
"""

from __future__ import annotations

from typing import Any


def _units(mpp: float | None) -> tuple[str, str]:
    return ("um", "um") if mpp else ("pixel", "pixel")


def image_frame(mpp: float | None) -> dict[str, Any]:
    """``scale``/``translate``/``units`` of a slide image layer (level-0 data)."""
    m = float(mpp) if mpp else 1.0
    return {"scale": (m, m), "translate": (0.0, 0.0), "units": _units(mpp)}


def vector_frame(mpp: float | None) -> dict[str, Any]:
    """``scale``/``translate``/``units`` of a Shapes/Points layer whose data are level-0 px."""
    m = float(mpp) if mpp else 1.0
    return {"scale": (m, m), "translate": (-m / 2, -m / 2), "units": _units(mpp)}


def raster_frame(mpp: float | None, downsample: float) -> dict[str, Any]:
    """``scale``/``translate``/``units`` of a raster at ``downsample`` level-0 px per pixel.

    Parameters
    ----------
    mpp : float or None
        Slide µm per level-0 pixel (``None``: world units are level-0 pixels).
    downsample : float
        Level-0 pixels per raster pixel; raster pixel ``(r, c)`` covers level-0
        ``[c d, (c + 1) d) x [r d, (r + 1) d)``.
    """
    m = float(mpp) if mpp else 1.0
    s = downsample * m
    t = (downsample - 1.0) * m / 2.0
    return {"scale": (s, s), "translate": (t, t), "units": _units(mpp)}
