"""The openslide backend: formats tifffile cannot read (MRXS, NDPI, VMS, SCN, BIF...).

openslide addresses every level by a level-0 corner and divides it by its own
downsample; where that downsample is not an integer (a level side that is not
an exact fraction of level 0's) a level read can be shifted by a fraction of a
pixel, so reads through this backend are pixel-exact only on integer levels.

openslide-python is optional (``pip install napari-magnipath[openslide]``) and
imported only when a slide needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import SlideError
from magnipath.slide._base import Level, Slide, level_downsample
from magnipath.slide._cache import DEFAULT_CACHE_BYTES
from magnipath.slide._lazy import LazyLevel

OPENSLIDE_FIRST_SUFFIXES = frozenset({".mrxs", ".ndpi", ".vms", ".vmu", ".scn", ".bif",
                                      ".svslide"})
"""File suffixes opened with openslide first when it is installed."""


def import_openslide() -> Any | None:
    """The ``openslide`` module, or ``None`` when openslide-python (or its library) is absent."""
    try:
        import openslide
    except (ImportError, OSError):
        return None
    return openslide


def openslide_can_read(path: Path) -> bool:
    """Whether openslide is installed and recognises ``path``'s format."""
    openslide = import_openslide()
    if openslide is None:
        return False
    try:
        return openslide.OpenSlide.detect_format(os.fspath(path)) is not None
    except Exception:  # noqa: BLE001 - any failure to detect means 'cannot read'
        return False


def _float_property(props: Any, name: str) -> float | None:
    try:
        value = float(props[name])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


class OpenSlideSlide(Slide):
    """A slide read with openslide-python (see :func:`magnipath.slide.open_slide`)."""

    backend = "openslide"

    def __init__(self, path: str | os.PathLike, *, mpp: float | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        path = Path(path)
        openslide = import_openslide()
        if openslide is None:
            raise SlideError(f"{path}: this format needs openslide, which is not installed; "
                             "install it with: pip install 'napari-magnipath[openslide]'.")
        try:
            osr = openslide.OpenSlide(os.fspath(path))
        except Exception as e:  # noqa: BLE001 - report any library failure as a SlideError
            raise SlideError(f"{path}: openslide cannot read it ({type(e).__name__}: {e}); "
                             "it is corrupt, truncated or not a slide.") from None
        try:
            if cache_bytes > 0:
                osr.set_cache(openslide.OpenSlideCache(int(cache_bytes)))
            props = osr.properties
            found_mpp = mpp if mpp is not None else _float_property(props, "openslide.mpp-x")
            if found_mpp is None:
                from magnipath.slide._tiff import no_mpp_message

                raise SlideError(no_mpp_message(path))
            dims = osr.level_dimensions
            shape0 = (int(dims[0][1]), int(dims[0][0]))
            levels = [Level(i, (int(h), int(w)), level_downsample(shape0, (int(h), int(w))))
                      for i, (w, h) in enumerate(dims)]
        except BaseException:
            osr.close()
            raise
        super().__init__(path, mpp=float(found_mpp),
                         mpp_source="override" if mpp is not None else "openslide",
                         levels=levels,
                         objective_power=_float_property(props, "openslide.objective-power"))
        self._osr = osr
        self._os_downsamples = [float(v) for v in osr.level_downsamples]

    def _read_level(self, level: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        ds = self._os_downsamples[level]
        loc = (round(x0 * ds), round(y0 * ds))  # openslide takes the corner in level 0
        try:
            rgba = np.asarray(self._osr.read_region(loc, level, (width, height)))
        except Exception as e:
            raise SlideError(f"{self.path}: openslide cannot read level {level} at "
                             f"({x0}, {y0}) ({type(e).__name__}: {e}); the file is corrupt "
                             "or truncated.") from e
        rgb = np.array(rgba[:, :, :3])
        rgb[rgba[:, :, 3] == 0] = 0  # outside the slide: transparent -> zero padding
        return rgb

    def zarr_levels(self) -> list[Any]:
        """Lazy ``(y, x, 3)`` uint8 array-likes per level, finest first (read via openslide)."""
        self._check_open()
        return [LazyLevel(self, i) for i in range(len(self.levels))]

    def _close(self) -> None:
        self._osr.close()
