"""Microns per pixel from TIFF metadata: OME, Aperio/SVS descriptions, resolution tags.

Each reader returns ``(mpp, source)`` for level 0 or ``None`` when its source
holds no usable value. :func:`tiff_mpp` tries them in order of trust: OME
``PhysicalSizeX/Y``, the Aperio ``MPP =`` (or ``AppMag =``) field, then the TIFF
``XResolution``/``YResolution`` tags with a centimetre or inch unit.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import Any

MAX_RESOLUTION_TAG_MPP = 50.0
"""Resolution tags giving coarser pixels than this (µm/px) are taken as a screen or
print resolution (72, 96, 300 dpi...) written by a generic image tool, not a scan."""

_UNIT_TO_UM = {
    "µm": 1.0, "um": 1.0, "μm": 1.0, "micron": 1.0, "micrometer": 1.0,
    "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4, "pm": 1e-6,
}

_APERIO_MPP = re.compile(r"\bMPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_APERIO_MAG = re.compile(r"\bAppMag\s*=\s*([0-9]*\.?[0-9]+)")


def _positive(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def ome_mpp(ome_xml: str | None) -> tuple[float, str] | None:
    """µm per level-0 pixel from the first ``Pixels`` element of OME-XML, with units."""
    if not ome_xml:
        return None
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in ("X", "Y"):
        raw = pixels.get(f"PhysicalSize{axis}")
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if raw is None or unit not in _UNIT_TO_UM:
            continue
        try:
            size = _positive(float(raw) * _UNIT_TO_UM[unit])
        except ValueError:
            size = None
        if size is not None:
            sizes.append(size)
    if not sizes:
        return None
    return sizes[0], "ome"


def aperio_mpp(description: str | None) -> tuple[float, str] | None:
    """µm per pixel from an Aperio ImageDescription (``MPP = 0.2520``, else ``AppMag = 40``)."""
    if not description or ("Aperio" not in description and "MPP" not in description):
        return None
    m = _APERIO_MPP.search(description)
    if m:
        mpp = _positive(float(m.group(1)))
        if mpp is not None:
            return mpp, "aperio"
    m = _APERIO_MAG.search(description)
    if m:
        mag = _positive(float(m.group(1)))
        if mag is not None:
            return 10.0 / mag, "aperio"
    return None


def aperio_app_mag(description: str | None) -> float | None:
    """The scanner's nominal objective (``AppMag``) from an Aperio description, if any."""
    if not description:
        return None
    m = _APERIO_MAG.search(description)
    return _positive(float(m.group(1))) if m else None


def _rational(value: Any) -> float | None:
    try:
        if isinstance(value, tuple | list):
            num, den = value[0], value[1]
            return _positive(num / den) if den else None
        return _positive(float(value))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def resolution_mpp(tags: Any) -> tuple[float, str] | None:
    """µm per pixel from XResolution/YResolution with ResolutionUnit cm (3) or inch (2).

    Values coarser than :data:`MAX_RESOLUTION_TAG_MPP` are ignored (see there).
    """
    unit_tag = tags.get(296)
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default: inch
    if unit not in (2, 3):
        return None
    per_unit = 25400.0 if unit == 2 else 1e4
    for code in (282, 283):  # XResolution, YResolution
        tag = tags.get(code)
        res = _rational(tag.value) if tag is not None else None
        if res is not None:
            mpp = per_unit / res
            if mpp <= MAX_RESOLUTION_TAG_MPP:
                return mpp, "tiff-resolution"
            return None
    return None


def tiff_mpp(tif: Any, page: Any) -> tuple[float, str] | None:
    """µm per level-0 pixel of an open ``tifffile.TiffFile`` whose level 0 is ``page``."""
    if tif.is_ome:
        found = ome_mpp(tif.ome_metadata)
        if found:
            return found
    found = aperio_mpp(getattr(page, "description", None))
    if found:
        return found
    return resolution_mpp(page.tags)
