"""The Pillow backend: any 2D raster Pillow reads (PNG, JPEG, BMP, GIF, WebP, ...).

Exports, figures and crops from microscopes without a slide scanner come as
ordinary image files. Opening one reads only its header (size, mode, dpi); the
pixels are decoded on the first read (these formats have no random access) and
kept in memory, with a cheap in-memory pyramid (each level the exact mean of
2 x 2 blocks of the previous one, made when first needed) so low-magnification
reads stay fast. Plain and tiled TIFF files go through the tifffile backend,
which reads strips and tiles lazily.

Resolution: a dpi in the file (PNG ``pHYs`` in pixels per metre, JPEG JFIF
density) is used when it is fine enough to be a scan (at most
:data:`magnipath.slide._metadata.MAX_RESOLUTION_TAG_MPP` µm/px; 72, 96 or
300 dpi written by image editors are not). Otherwise pass ``mpp=`` or let the
command estimate it (``--mpp estimate``).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import SlideError
from magnipath.slide._base import Level, Slide, SlideWarning, level_downsample
from magnipath.slide._lazy import LazyLevel
from magnipath.slide._metadata import MAX_RESOLUTION_TAG_MPP
from magnipath.slide._resample import box_reduce

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif", ".webp",
                  ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k", ".jpx")
"""Suffixes opened with Pillow first (other files fall back to Pillow after tifffile)."""

IMAGE_PYRAMID_SIDE = 1024
"""In-memory pyramid levels are added (each halving the previous) while a side exceeds this."""

IMAGE_MAX_PIXELS = 2**29
"""Largest image (pixels) decoded in memory (1.5 GiB as RGB); larger ones must be converted."""

SUPPORTED_FORMATS = (
    "MagniPath reads whole-slide images (tiled or plain TIFF, SVS, OME-TIFF; MRXS, NDPI, VMS, "
    "SCN, BIF and other openslide formats when openslide is installed) and any 2D 8-bit RGB or "
    "greyscale raster that Pillow reads (PNG, JPEG, BMP, GIF, WebP, TGA, PNM, JPEG 2000). "
    "Convert the file to one of these (e.g. a pyramidal TIFF: vips tiffsave IN OUT.tif "
    "--pyramid --tile --compression jpeg)."
)
"""The sentence every 'cannot read this file' error ends with."""

_TO_RGB = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "RGBa", "La", "CMYK", "YCbCr", "RGBX",
           "LAB", "HSV"}


def image_dpi_mpp(info: dict) -> float | None:
    """µm per pixel from Pillow's ``info["dpi"]``, or ``None`` when absent or screen-like.

    A dpi giving pixels coarser than ``MAX_RESOLUTION_TAG_MPP`` µm (72, 96, 300
    dpi...) is an editor's print setting, not a scan resolution.
    """
    dpi = info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple | list) else float(dpi)
    except (TypeError, ValueError, IndexError):
        return None
    if not np.isfinite(value) or value <= 0:
        return None
    mpp = 25400.0 / value
    return mpp if mpp <= MAX_RESOLUTION_TAG_MPP else None


def _open_image(path: Path) -> Any:
    """``PIL.Image`` of ``path`` with only its header read; SlideError when Pillow cannot."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        raise SlideError(f"{path}: the image is too large to decode in memory at once; "
                         + SUPPORTED_FORMATS) from None
    except Exception as e:  # noqa: BLE001 - any parser failure means 'not readable'
        raise SlideError(f"{path}: not a readable image ({type(e).__name__}: "
                         f"{str(e)[:200]}). " + SUPPORTED_FORMATS) from None


class ImageSlide(Slide):
    """A 2D raster read with Pillow (see :func:`magnipath.slide.open_slide`).

    One full-resolution level as stored, plus in-memory levels halving it while
    a side exceeds :data:`IMAGE_PYRAMID_SIDE` px; level ``j`` has shape
    ``(height // 2**j, width // 2**j)`` and pixel ``(r, c)`` is the mean of the
    level-0 block ``[r*2**j, (r+1)*2**j) x [c*2**j, (c+1)*2**j)``.
    """

    backend = "pillow"

    def __init__(self, path: str | os.PathLike, *, mpp: float | None = None,
                 **_: Any) -> None:
        path = Path(path)
        im = _open_image(path)
        try:
            width, height = (int(v) for v in im.size)
            mode = im.mode
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            dpi_mpp = image_dpi_mpp(im.info)
            fmt = im.format or "image"
        finally:
            im.close()
        if mode not in _TO_RGB:
            raise SlideError(f"{path}: a {fmt} image with {mode!r} pixels (16-bit, 32-bit or "
                             "float); MagniPath reads 8-bit RGB or greyscale images. Convert it "
                             "to 8-bit RGB (e.g. in Fiji: Image > Type > RGB Color) and save it "
                             "as PNG or TIFF.")
        if width * height > IMAGE_MAX_PIXELS:
            raise SlideError(f"{path}: {width}x{height} px is too large to decode in memory "
                             "at once; " + SUPPORTED_FORMATS)
        if n_frames > 1:
            warnings.warn(f"{path} holds {n_frames} frames; MagniPath reads the first only.",
                          SlideWarning, stacklevel=3)
        if mpp is not None:
            found, source = float(mpp), "override"
        elif dpi_mpp is not None:
            found, source = dpi_mpp, "image-resolution"
        else:
            from magnipath.slide._tiff import no_mpp_message

            raise SlideError(no_mpp_message(path))
        shape0 = (height, width)
        shapes = [shape0]
        while max(shapes[-1]) > IMAGE_PYRAMID_SIDE and min(shapes[-1]) >= 2:
            shapes.append((shapes[-1][0] // 2, shapes[-1][1] // 2))
        levels = [Level(i, s, level_downsample(shape0, s)) for i, s in enumerate(shapes)]
        super().__init__(path, mpp=found, mpp_source=source, levels=levels)
        self.format = fmt
        self._pixels: list[np.ndarray | None] = [None] * len(levels)
        self._lock = threading.Lock()

    def _level_pixels(self, level: int) -> np.ndarray:
        """Decoded pixels of a level (decoding level 0 and reducing on first use)."""
        arr = self._pixels[level]
        if arr is not None:
            return arr
        with self._lock:
            if self._pixels[0] is None:
                self._pixels[0] = self._decode()
            for j in range(1, level + 1):
                if self._pixels[j] is None:
                    prev = self._pixels[j - 1]
                    h, w = self.levels[j].shape
                    reduced = box_reduce(prev[: 2 * h, : 2 * w], 2)
                    reduced.setflags(write=False)
                    self._pixels[j] = reduced
            return self._pixels[level]  # type: ignore[return-value]

    def _decode(self) -> np.ndarray:
        im = _open_image(self.path)
        try:
            im.seek(0)
            if im.mode != "RGB":
                im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
            arr = np.asarray(im)
        except SlideError:
            raise
        except Exception as e:
            raise SlideError(f"{self.path}: the {self.format} data cannot be decoded "
                             f"({type(e).__name__}: {str(e)[:200]}); the file is corrupt or "
                             "truncated (copy or export it again).") from e
        finally:
            im.close()
        if arr.shape[:2] != self.shape:
            raise SlideError(f"{self.path}: decoded {arr.shape[1]}x{arr.shape[0]} px but the "
                             f"header says {self.width}x{self.height}; the file is corrupt.")
        if arr.shape[2] == 4:  # transparent pixels read as zero padding, like openslide's
            rgb = np.array(arr[:, :, :3])
            rgb[arr[:, :, 3] == 0] = 0
            arr = rgb
        arr = np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)
        arr.setflags(write=False)
        return arr

    def _read_level(self, level: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        src = self._level_pixels(level)
        lh, lw = src.shape[:2]
        ya, yb = max(y0, 0), min(y0 + height, lh)
        xa, xb = max(x0, 0), min(x0 + width, lw)
        out = np.zeros((height, width, 3), np.uint8)
        if ya < yb and xa < xb:
            out[ya - y0:yb - y0, xa - x0:xb - x0] = src[ya:yb, xa:xb]
        return out

    def zarr_levels(self) -> list[Any]:
        """Lazy ``(y, x, 3)`` uint8 array-likes per level, finest first."""
        self._check_open()
        return [LazyLevel(self, i) for i in range(len(self.levels))]

    def _close(self) -> None:
        self._pixels = [None] * len(self.levels)
