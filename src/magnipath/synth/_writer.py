"""Streaming pyramidal tiled TIFF writer (BigTIFF, JPEG or zlib tiles).

Level 0 is rendered and written tile by tile. Each finished tile is also
averaged 2x2 into a one-tile-row strip of the next level; when a strip row is
complete its tiles are encoded, appended to a temporary side file, and averaged
into the level below, and so on. After level 0, each lower level is copied from
its side file as pre-encoded tiles. Memory holds one tile row per lower level,
whatever the slide height; nothing holds a whole level.

Levels are successive top-level IFDs (NewSubfileType 0, then 1 =
reduced-resolution), each level exactly half (floor) of the one above, until the
longest side is below 1024 px.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

MIN_LEVEL_SIDE = 1024


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """``(height, width)`` of every level: halve (floor) until the longest side < 1024."""
    shapes = [(height, width)]
    while max(shapes[-1]) >= MIN_LEVEL_SIDE and min(shapes[-1]) >= 2:
        h, w = shapes[-1]
        shapes.append((h // 2, w // 2))
    return shapes


def downsample2(tile: np.ndarray) -> np.ndarray:
    """2x2 area average of a ``(2h, 2w, c)`` uint8 array, rounded half up."""
    t = tile.astype(np.uint16)
    s = t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]
    return ((s + 2) >> 2).astype(np.uint8)


class _Encoder:
    def __init__(self, compression: str, quality: int) -> None:
        self.compression = compression
        self.quality = int(quality)

    def __call__(self, tile: np.ndarray) -> bytes:
        if self.compression == "jpeg":
            return imagecodecs.jpeg8_encode(tile, level=self.quality, colorspace="RGB",
                                            outcolorspace="YCBCR", subsampling=(2, 2))
        return imagecodecs.deflate_encode(tile, level=1)

    def tiff_args(self) -> dict:
        if self.compression == "jpeg":
            return {"compression": "jpeg", "compressionargs": {"level": self.quality}}
        return {"compression": "zlib", "compressionargs": {"level": 1}}


class _Level:
    """One lower level being built: a strip of one tile row, and its side file of tiles."""

    def __init__(self, shape: tuple[int, int], tile: int, above_cols: int, tmpdir: Path,
                 k: int) -> None:
        self.shape = shape
        self.tile = tile
        self.rows = -(-shape[0] // tile)
        self.cols = -(-shape[1] // tile)
        width = max(self.cols * tile, -(-above_cols // 2) * tile)
        self.strip = np.zeros((tile, width, 3), np.uint8)
        self.path = tmpdir / f"level{k}.tiles"
        self.fh = open(self.path, "wb")
        self.sizes: list[int] = []

    def finish(self) -> None:
        self.fh.close()

    def tiles(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            for n in self.sizes:
                yield fh.read(n)


class _Pyramid:
    """Cascade of 2x2 averages from level 0 down to the smallest level."""

    def __init__(self, shapes: list[tuple[int, int]], tile: int, encode: _Encoder,
                 tmpdir: Path) -> None:
        self.tile = tile
        self.encode = encode
        cols0 = -(-shapes[0][1] // tile)
        self.levels: list[_Level] = []
        above = cols0
        for k, s in enumerate(shapes[1:], start=1):
            lev = _Level(s, tile, above, tmpdir, k)
            self.levels.append(lev)
            above = lev.cols
        self.rows_above = [-(-shapes[0][0] // tile)] + [lev.rows for lev in self.levels]

    def push(self, k: int, ty: int, tx: int, tile: np.ndarray) -> None:
        """A finished tile ``(ty, tx)`` of level ``k`` (0 = level 0) goes into level k+1."""
        if k >= len(self.levels):
            return
        lev = self.levels[k]
        half = self.tile // 2
        r0 = (ty % 2) * half
        lev.strip[r0:r0 + half, tx * half:(tx + 1) * half] = downsample2(tile)

    def row_done(self, k: int, ty: int) -> None:
        """Tile row ``ty`` of level ``k`` is complete; flush level k+1 when its row is."""
        if k >= len(self.levels):
            return
        if ty % 2 == 0 and ty != self.rows_above[k] - 1:
            return
        lev = self.levels[k]
        row = ty // 2
        if row < lev.rows:
            t = self.tile
            for tx in range(lev.cols):
                tile = lev.strip[:, tx * t:(tx + 1) * t]
                data = self.encode(np.ascontiguousarray(tile))
                lev.fh.write(data)
                lev.sizes.append(len(data))
                self.push(k + 1, row, tx, tile)
            self.row_done(k + 1, row)
        lev.strip[:] = 0


def write_pyramid(path: str | os.PathLike, shape: tuple[int, int],
                  render: Callable[[int, int, int, int], np.ndarray], *, mpp: float,
                  tile: int = 512, compression: str = "jpeg", quality: int = 90,
                  description: str = "", progress: ProgressCallback | None = None,
                  cancel: CancelCallback | None = None) -> list[tuple[int, int]]:
    """Write a pyramidal tiled BigTIFF, rendering level 0 tile by tile.

    Parameters
    ----------
    path : path-like
        Output file (written in place; wrap in :func:`magnipath._io.atomic_path`).
    shape : (int, int)
        ``(height, width)`` of level 0 in pixels.
    render : callable
        ``render(x, y, w, h) -> (h, w, 3) uint8`` for a level-0 box; called once
        per tile in row-major order with full tiles (boxes may pass the edge).
    mpp : float
        Level-0 resolution, µm/px; stored as X/YResolution in pixels per cm
        (level k: ``mpp * 2**k``).
    tile : int
        Tile side in pixels (multiple of 16).
    compression : {"jpeg", "zlib"}
    quality : int
        JPEG quality.
    description : str
        ImageDescription of level 0.
    progress, cancel : callables, optional
        Progress per level-0 tile row (stage ``"synth"``); cancellation checked per row.

    Returns
    -------
    list of (int, int)
        ``(height, width)`` of every level.
    """
    path = Path(path)
    shapes = level_shapes(*shape)
    encode = _Encoder(compression, quality)
    h0, w0 = shape
    rows, cols = -(-h0 // tile), -(-w0 // tile)
    common = dict(photometric="rgb", tile=(tile, tile), dtype=np.uint8, metadata=None,
                  resolutionunit="CENTIMETER", **encode.tiff_args())
    with tempfile.TemporaryDirectory(prefix=".synth-levels-", dir=path.parent) as tmp:
        pyr = _Pyramid(shapes, tile, encode, Path(tmp))

        def level0() -> Iterator[bytes]:
            for ty in range(rows):
                check_cancel(cancel)
                for tx in range(cols):
                    arr = render(tx * tile, ty * tile, tile, tile)
                    pyr.push(0, ty, tx, arr)
                    data = encode(arr)
                    if tx == cols - 1:  # tifffile stops pulling after the last tile
                        pyr.row_done(0, ty)
                        report(progress, "synth", ty + 1, rows, level=0)
                    yield data

        try:
            with tifffile.TiffWriter(path, bigtiff=True) as tif:
                res = 1e4 / mpp
                tif.write(level0(), shape=(h0, w0, 3), subfiletype=0, description=description,
                          resolution=(res, res), **common)
                for k, lev in enumerate(pyr.levels, start=1):
                    lev.finish()
                    res = 1e4 / (mpp * 2 ** k)
                    tif.write(lev.tiles(), shape=(*lev.shape, 3), subfiletype=1,
                              resolution=(res, res), **common)
        finally:
            for lev in pyr.levels:
                lev.finish()
    return shapes
