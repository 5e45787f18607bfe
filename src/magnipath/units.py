"""Conversions between magnification and microns per pixel (mpp).

The convention of the whole project: ``magnification = 10 / mpp``; 40x is
0.25 µm/px, 20x is 0.5 µm/px, 5x is 2 µm/px.
"""

from __future__ import annotations


def mpp_to_magnification(mpp: float) -> float:
    """Objective magnification of a resolution given in µm per pixel."""
    if mpp <= 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    return 10.0 / mpp


def magnification_to_mpp(magnification: float) -> float:
    """Resolution in µm per pixel of an objective magnification."""
    if magnification <= 0:
        raise ValueError(f"magnification must be positive, got {magnification}")
    return 10.0 / magnification


def resolve_mpp(*, mpp: float | None = None, magnification: float | None = None) -> float:
    """Return µm per pixel from exactly one of ``mpp`` or ``magnification``.

    Raises
    ------
    ValueError
        If both or neither are given, or the value is not positive.
    """
    if (mpp is None) == (magnification is None):
        raise ValueError("give exactly one of mpp or magnification")
    if mpp is not None:
        if mpp <= 0:
            raise ValueError(f"mpp must be positive, got {mpp}")
        return float(mpp)
    return magnification_to_mpp(float(magnification))  # type: ignore[arg-type]
