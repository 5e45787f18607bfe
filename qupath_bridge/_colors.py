"""Colours as QuPath stores them: ``[r, g, b]`` lists or packed signed ARGB ints."""

from __future__ import annotations

import hashlib
from typing import Any

RGB = tuple[int, int, int]


def parse_color(value: Any) -> RGB | None:
    """Return ``(r, g, b)`` in 0..255 from any colour form QuPath writes.

    Accepts ``[r, g, b]`` / ``[r, g, b, a]`` lists (alpha last, dropped), a packed (signed) 32-bit
    ARGB or RGB integer as in QuPath 0.2/0.3 (``-3670016`` -> ``(200, 0, 0)``),
    and ``"#rrggbb"`` strings. ``None`` stays ``None``.

    Raises
    ------
    ValueError
        When the value is none of those forms.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"colour {value!r} is not [r, g, b] or a packed integer")
    if isinstance(value, int):
        v = value & 0xFFFFFF
        return ((v >> 16) & 255, (v >> 8) & 255, v & 255)
    if isinstance(value, str) and value.startswith("#") and len(value) in (7, 9):
        try:
            v = int(value[1:7], 16)
        except ValueError:
            pass
        else:
            return ((v >> 16) & 255, (v >> 8) & 255, v & 255)
    if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], int):
        return parse_color(value[0])  # QuPath reads a 1-element array as a packed int
    if isinstance(value, list | tuple) and len(value) in (3, 4):
        try:
            rgb = tuple(round(float(c)) for c in value[:3])
        except (TypeError, ValueError):
            rgb = ()
        if len(rgb) == 3 and all(0 <= c <= 255 for c in rgb):
            return rgb  # type: ignore[return-value]
    raise ValueError(f"colour {value!r} is not [r, g, b] with values 0..255 or a packed integer")


def pack_argb(rgb: RGB) -> int:
    """Pack ``(r, g, b)`` into QuPath's signed 32-bit ARGB integer (opaque)."""
    v = 0xFF000000 | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    return v - (1 << 32)


def default_class_color(name: str) -> RGB:
    """A stable colour for a class that came without one (QuPath needs a colour).

    Derived from a hash of the name so the same class gets the same colour in
    every file and every run.
    """
    h = hashlib.sha1(name.encode("utf-8")).digest()
    # keep away from very dark / very light colours so the class stays visible
    return (64 + h[0] % 160, 64 + h[1] % 160, 64 + h[2] % 160)
