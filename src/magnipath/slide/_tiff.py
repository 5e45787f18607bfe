"""The tifffile backend: pyramidal TIFF, SVS-like, OME-TIFF (SubIFDs) and plain TIFF.

Pixels are read tile by tile: the encoded bytes of each needed TIFF tile (or
strip) are read with ``os.pread`` (no shared file position, so threads do not
serialise) and decoded by tifffile's own segment decoder (imagecodecs, which
releases the GIL); decoded tiles stay in a byte-bounded LRU cache shared by all
threads, so neighbouring patches reuse them. ``zarr_levels`` keeps the
tifffile + zarr path for napari.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import SlideError
from magnipath.slide._base import Level, Slide, SlideWarning, level_downsample
from magnipath.slide._cache import DEFAULT_CACHE_BYTES, TileCache
from magnipath.slide._lazy import LazyLevel
from magnipath.slide._metadata import aperio_app_mag, tiff_mpp

PLAIN_TIFF_WARN_PX = 1024
"""A single-level TIFF larger than this (either side, px) gets a 'no pyramid' warning."""

READAHEAD_TILES = 2
"""Tiles decoded ahead (in tile order) after each read, in a background pool."""

READAHEAD_WORKERS = 4
"""Most threads of a slide's read-ahead pool (at most the CPU count)."""

_JPEG = {6, 7, 33007, 34892}


class TiffUnreadable(SlideError):
    """tifffile cannot parse the file (another backend may still read it)."""


def no_mpp_message(path: Path) -> str:
    """The error text for a slide without a resolution in its metadata.

    It says how to give the resolution and, when it is not known, how to get an
    estimate from the pixels (``magnipath magnification suggest-mpp``).
    """
    import shlex

    return (f"{path}: the file holds no microns-per-pixel (no OME PhysicalSizeX, Aperio "
            "MPP/AppMag, or TIFF resolution in cm/inch), so magnifications cannot be "
            "computed. Give the scan resolution yourself: --mpp 0.25 on the command line "
            "(0.25 µm/px = 40x, 0.5 = 20x), or mpp=0.25 in Python (open_slide(path, mpp=0.25)). "
            "If you do not know it, estimate it from the pixels: `magnipath magnification "
            f"suggest-mpp {shlex.quote(str(path))} [--model MODEL_DIR]` (or `magnipath info`) "
            "prints an ESTIMATE (from nucleus sizes; without a trained model the rough "
            "baseline); check it (scanner, objective) before passing it on with --mpp.")


class _Shared:
    """What the levels of one TiffSlide share: file descriptor, tile cache, read-ahead pool."""

    def __init__(self, tif: Any, fd: int, cache: TileCache) -> None:
        self.tif, self.fd, self.cache = tif, fd, cache
        self.workers = max(1, min(READAHEAD_WORKERS, os.cpu_count() or 1))
        self.stores: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queued = 0
        self._closed = False
        self._pid = os.getpid()

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the read-ahead pool unless the pool is full or closed."""
        if os.getpid() != self._pid:  # a forked child: the parent's pool threads are gone
            self._lock, self._pool, self._queued, self._pid = (threading.Lock(), None, 0,
                                                               os.getpid())
        with self._lock:
            if self._closed or self._queued >= 4 * self.workers:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers,
                                                thread_name_prefix="magnipath-readahead")
            self._queued += 1
            pool = self._pool
        # outside the lock: a future already done runs its callback right here
        try:
            future = pool.submit(fn)
        except RuntimeError:  # closed meanwhile
            self._done(None)
            return
        future.add_done_callback(self._done)

    def _done(self, _: Any) -> None:
        with self._lock:
            self._queued -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for store in self.stores:
            store.close()
        self.stores.clear()
        self.cache.clear()
        os.close(self.fd)
        self.tif.close()


class _LevelReader:
    """Reads regions of one TIFF page (tiled or stripped) through the tile cache."""

    def __init__(self, path: Path, page: Any, index: int, shared: _Shared) -> None:
        key = page.keyframe
        self.path, self.index, self.shared = path, index, shared
        self.fd, self.cache = shared.fd, shared.cache
        self.height, self.width = int(key.imagelength), int(key.imagewidth)
        if key.is_tiled:
            self.seg_h, self.seg_w = int(key.tilelength), int(key.tilewidth)
        else:
            self.seg_h, self.seg_w = min(int(key.rowsperstrip), self.height), self.width
        self.n_x = math.ceil(self.width / self.seg_w)
        self.offsets = tuple(int(v) for v in page.dataoffsets)
        self.counts = tuple(int(v) for v in page.databytecounts)
        self._decode = key.decode  # tifffile's thread-safe decoder closure
        self._kwargs: dict[str, Any] = {}
        if key.compression in _JPEG:
            self._kwargs = {"jpegtables": page.jpegtables, "jpegheader": key.jpegheader}

    def read(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w, 3), np.uint8)
        ya, yb = max(y0, 0), min(y0 + h, self.height)
        xa, xb = max(x0, 0), min(x0 + w, self.width)
        if ya >= yb or xa >= xb:
            return out
        rows = range(ya // self.seg_h, (yb - 1) // self.seg_h + 1)
        cols = range(xa // self.seg_w, (xb - 1) // self.seg_w + 1)
        self._read_ahead(rows, cols)
        for ty in rows:
            ty0 = ty * self.seg_h
            for tx in cols:
                tx0 = tx * self.seg_w
                tile = self._tile(ty * self.n_x + tx)
                sy0, sy1 = max(ya, ty0), min(yb, ty0 + tile.shape[0])
                sx0, sx1 = max(xa, tx0), min(xb, tx0 + tile.shape[1])
                if sy0 < sy1 and sx0 < sx1:
                    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = \
                        tile[sy0 - ty0:sy1 - ty0, sx0 - tx0:sx1 - tx0]
        return out

    def _read_ahead(self, rows: range, cols: range) -> None:
        """Decode in the pool the needed tiles after the first, and the next ones in order.

        Readers usually go row-major, so the tiles just right of (then below)
        this read come next; decoding them now uses the other cores even when
        neighbouring patches, read by different threads, share tiles.
        """
        if self.cache.max_bytes < 16 * self.seg_h * self.seg_w * 3:
            return  # a cache this small would evict what was read ahead before its use
        n = len(self.offsets)
        wanted = [ty * self.n_x + tx for ty in rows for tx in cols][1:]
        for ty in rows:
            last = ty * self.n_x + cols[-1]
            wanted.extend(i for i in range(last + 1, last + 1 + READAHEAD_TILES) if i < n)
        for i in wanted:
            if (self.index, i) not in self.cache:
                self.shared.submit(functools.partial(self._prefetch, i))

    def _prefetch(self, index: int) -> None:
        try:
            self._tile(index)
        except Exception:  # noqa: BLE001 - the reader that needs this tile reports the error
            pass

    def _tile(self, index: int) -> np.ndarray:
        return self.cache.get((self.index, index), lambda: self._decode_tile(index))

    def _decode_tile(self, index: int) -> np.ndarray:
        where = f"tile {index} of level {self.index}"
        if index >= len(self.offsets):
            raise SlideError(f"{self.path}: {where} is missing from the file; it is corrupt.")
        offset, count = self.offsets[index], self.counts[index]
        if count == 0 or offset == 0:  # empty (sparse) tile
            return np.zeros((self.seg_h, self.seg_w, 3), np.uint8)
        data = _pread(self.fd, count, offset)
        if len(data) < count:
            raise SlideError(f"{self.path}: {where} ends after the end of the file; the file "
                             "is truncated (copy it again).")
        try:
            arr, _, _ = self._decode(data, index, **self._kwargs)
        except Exception as e:
            raise SlideError(f"{self.path}: {where} cannot be decoded ({type(e).__name__}: "
                             f"{e}); the file is corrupt or truncated.") from e
        if arr is None:
            return np.zeros((self.seg_h, self.seg_w, 3), np.uint8)
        arr = arr.reshape(arr.shape[-3:])  # (depth=1, y, x, samples) -> (y, x, samples)
        if arr.dtype != np.uint8:
            raise SlideError(f"{self.path}: {where} has {arr.dtype} samples; MagniPath reads "
                             "8-bit RGB or greyscale slides.")
        if arr.shape[2] == 1:
            return np.repeat(arr, 3, axis=2)
        return np.ascontiguousarray(arr[:, :, :3])


def _pread(fd: int, count: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    with _SEEK_LOCK:  # pragma: no cover - platforms without pread (Windows)
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, count)


_SEEK_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's log lines about damaged files while parsing: our error says it."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _level_pages(tif: Any) -> list[Any]:
    """The pages of the main image's pyramid, finest first."""
    series = tif.series[0]
    pages = []
    for lvl in series.levels:
        page = lvl.pages[0] if lvl.pages else None
        if page is not None:
            pages.append(page)
    if not pages:
        raise TiffUnreadable("no image pages")
    pages.sort(key=lambda p: -int(p.keyframe.imagewidth))
    return pages


def _check_page(path: Path, page: Any, index: int, filesize: int) -> None:
    key = page.keyframe
    if key.dtype is None or np.dtype(key.dtype) != np.uint8:
        raise SlideError(f"{path}: level {index} has {key.dtype} samples; MagniPath reads "
                         "8-bit RGB or greyscale slides (convert it, e.g. with QuPath or vips).")
    if key.samplesperpixel not in (1, 3, 4) or (key.planarconfig == 2 and
                                                key.samplesperpixel > 1):
        raise SlideError(f"{path}: level {index} has {key.samplesperpixel} samples per pixel "
                         f"stored {'separately' if key.planarconfig == 2 else 'interleaved'}; "
                         "MagniPath reads interleaved RGB, RGBA or greyscale slides.")
    if key.imagedepth != 1:
        raise SlideError(f"{path}: level {index} is a 3D (z-stack) image; MagniPath reads 2D.")
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
    if ends and max(ends) > filesize:
        raise SlideError(f"{path}: level {index} stores data up to byte {max(ends)} but the "
                         f"file has only {filesize} bytes; the file is truncated (copy it "
                         "again).")


class TiffSlide(Slide):
    """A slide read with tifffile (see :func:`magnipath.slide.open_slide`)."""

    backend = "tifffile"

    def __init__(self, path: str | os.PathLike, *, mpp: float | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        import tifffile

        path = Path(path)
        try:
            with _quiet_tifffile():
                self._tif = tifffile.TiffFile(path)
        except Exception as e:  # noqa: BLE001 - any parser failure means 'not readable'
            raise TiffUnreadable(f"{path}: not a readable TIFF file ({type(e).__name__}: "
                                 f"{e}); it is corrupt, truncated or not a slide.") from None
        try:
            self._setup(path, mpp, cache_bytes)
        except BaseException:
            self._tif.close()
            raise

    def _setup(self, path: Path, mpp: float | None, cache_bytes: int) -> None:
        try:
            with _quiet_tifffile():
                pages = _level_pages(self._tif)
        except Exception as e:  # noqa: BLE001 - any parser failure means 'not readable'
            raise TiffUnreadable(f"{path}: cannot find the image in this TIFF "
                                 f"({type(e).__name__}: {e}); it is corrupt or not a "
                                 "slide.") from None
        filesize = path.stat().st_size
        for i, page in enumerate(pages):
            _check_page(path, page, i, filesize)
        desc = getattr(pages[0], "description", None)
        if mpp is not None:
            found: tuple[float, str] | None = (float(mpp), "override")
        else:
            found = tiff_mpp(self._tif, pages[0].keyframe)
        if found is None:
            raise SlideError(no_mpp_message(path))
        shape0 = (int(pages[0].keyframe.imagelength), int(pages[0].keyframe.imagewidth))
        levels = []
        for i, p in enumerate(pages):
            shape = (int(p.keyframe.imagelength), int(p.keyframe.imagewidth))
            levels.append(Level(i, shape, level_downsample(shape0, shape)))
        if len(levels) == 1 and max(shape0) > PLAIN_TIFF_WARN_PX:
            warnings.warn(f"{path} has no pyramid (a single resolution level of "
                          f"{shape0[1]}x{shape0[0]} px): low-magnification reads decode the "
                          "full-resolution image and are slow. Convert it to a pyramidal "
                          "TIFF (e.g. with vips tiffsave --pyramid --tile).",
                          SlideWarning, stacklevel=4)
        super().__init__(path, mpp=found[0], mpp_source=found[1], levels=levels,
                         objective_power=aperio_app_mag(desc))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.cache = TileCache(cache_bytes)
        self._shared = _Shared(self._tif, fd, self.cache)
        self._finalizer = weakref.finalize(self, self._shared.close)
        self._readers = [_LevelReader(path, p, i, self._shared) for i, p in enumerate(pages)]
        self._pages = pages

    def _read_level(self, level: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        return self._readers[level].read(y0, x0, height, width)

    def zarr_levels(self) -> list[Any]:
        """Lazy ``(y, x, 3)`` uint8 arrays per level, finest first (tifffile ``aszarr``).

        RGB levels are read-only ``zarr`` arrays; greyscale or RGBA levels are
        wrapped so that they too read as ``(y, x, 3)``.
        """
        import zarr

        self._check_open()
        out: list[Any] = []
        for i, page in enumerate(self._pages):
            key = page.keyframe
            if key.samplesperpixel == 3 and key.planarconfig == 1:
                store = page.aszarr(fillvalue=0)
                self._shared.stores.append(store)
                out.append(zarr.open(store, mode="r"))
            else:
                out.append(LazyLevel(self, i))
        return out

    def _close(self) -> None:
        self._finalizer()  # runs _Shared.close once
