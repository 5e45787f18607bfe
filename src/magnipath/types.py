"""Typed aliases for units, pairs and boxes used across the public API."""

from __future__ import annotations

from typing import Literal, TypeAlias

IntPair: TypeAlias = tuple[int, int]
"""A pair of integers; the docstring of each user says which order."""

Box: TypeAlias = tuple[float, float, float, float]
"""A rectangle ``(x, y, width, height)`` in level-0 pixels (x right, y down)."""

Units: TypeAlias = Literal["mpp", "magnification"]
"""How a resolution is given: microns per pixel, or objective magnification."""

RGB: TypeAlias = tuple[int, int, int]
"""A colour as ``(r, g, b)`` in 0..255."""
