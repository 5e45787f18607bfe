"""Open whole-slide images and read them at any resolution.

:func:`open_slide` returns a :class:`Slide` with its pyramid (:attr:`Slide.levels`),
its level-0 resolution (:attr:`Slide.mpp`, with its source) and
:meth:`Slide.read_region`, which takes a box in level-0 pixels and a target
resolution, reads from the best level, resamples only the remainder and
zero-pads outside the slide.

Backends: tifffile (generic tiled pyramidal TIFF and SVS-like files with levels
as successive IFDs, OME-TIFF with levels as SubIFDs, plain TIFF), for what
tifffile cannot read (MRXS, NDPI, ...) openslide-python when installed, and
Pillow for ordinary 2D rasters (PNG, JPEG, BMP, GIF, WebP...: header read at
open, pixels decoded on the first read, with an in-memory pyramid).

Examples
--------
>>> from magnipath.slide import open_slide                       # doctest: +SKIP
>>> with open_slide("slide.svs") as s:                            # doctest: +SKIP
...     patch = s.read_region((1024, 2048, 512, 512), magnification=20)
...     patch.shape
(256, 256, 3)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from magnipath._errors import SlideError
from magnipath.slide._base import Level, Slide, SlideWarning
from magnipath.slide._cache import DEFAULT_CACHE_BYTES
from magnipath.slide._image import IMAGE_SUFFIXES, SUPPORTED_FORMATS, ImageSlide
from magnipath.slide._openslide import (
    OPENSLIDE_FIRST_SUFFIXES,
    OpenSlideSlide,
    import_openslide,
    openslide_can_read,
)
from magnipath.slide._tiff import TiffSlide, TiffUnreadable

Backend = Literal["auto", "tifffile", "openslide", "pillow"]

__all__ = ["DEFAULT_CACHE_BYTES", "IMAGE_SUFFIXES", "SUPPORTED_FORMATS", "Level", "Slide",
           "SlideError", "SlideWarning", "open_slide"]


def open_slide(path: str | os.PathLike, *, mpp: float | None = None,
               backend: Backend = "auto", cache_bytes: int = DEFAULT_CACHE_BYTES) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path : str or os.PathLike
        The slide file.
    mpp : float, optional
        Level-0 resolution in µm per pixel, overriding the file's metadata
        (needed when the file has none; 0.25 = 40x, 0.5 = 20x).
    backend : {"auto", "tifffile", "openslide", "pillow"}
        ``"auto"`` reads TIFF-based files with tifffile, MRXS/NDPI/VMS/SCN/BIF
        with openslide (when installed) and PNG/JPEG/BMP/GIF/WebP... with
        Pillow; a file tifffile cannot parse is tried with openslide, then
        with Pillow.
    cache_bytes : int
        Bound of the decoded-tile cache in bytes (default 256 MiB).

    Returns
    -------
    Slide
        Close it (or use it as a context manager) to release the file.

    Raises
    ------
    SlideError
        Missing, corrupt or truncated file, or a format no backend reads (the
        message lists the supported formats); no mpp in the metadata and no
        override (the message says how to pass ``--mpp`` / ``mpp=``).
    """
    path = Path(path)
    if mpp is not None and not (isinstance(mpp, int | float) and mpp > 0):
        raise SlideError(f"{path}: mpp must be a positive number of µm per pixel, got {mpp!r}.")
    if not path.exists():
        raise SlideError(f"{path}: no such file.")
    if path.is_dir():
        raise SlideError(f"{path}: is a folder, not a slide file.")
    if backend == "tifffile":
        return TiffSlide(path, mpp=mpp, cache_bytes=cache_bytes)
    if backend == "openslide":
        return OpenSlideSlide(path, mpp=mpp, cache_bytes=cache_bytes)
    if backend == "pillow":
        return ImageSlide(path, mpp=mpp)
    if backend != "auto":
        raise SlideError(f"{path}: unknown backend {backend!r}; use 'auto', 'tifffile', "
                         "'openslide' or 'pillow'.")
    suffix = path.suffix.lower()
    if suffix in OPENSLIDE_FIRST_SUFFIXES and import_openslide() is not None:
        return OpenSlideSlide(path, mpp=mpp, cache_bytes=cache_bytes)
    if suffix in IMAGE_SUFFIXES:
        return ImageSlide(path, mpp=mpp)
    try:
        return TiffSlide(path, mpp=mpp, cache_bytes=cache_bytes)
    except TiffUnreadable as tiff_error:
        if openslide_can_read(path):
            return OpenSlideSlide(path, mpp=mpp, cache_bytes=cache_bytes)
        if _pillow_can_read(path):
            return ImageSlide(path, mpp=mpp)
        raise TiffUnreadable(f"{tiff_error} {SUPPORTED_FORMATS}") from None


def _pillow_can_read(path: Path) -> bool:
    """Whether Pillow identifies ``path`` as an image (header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False
