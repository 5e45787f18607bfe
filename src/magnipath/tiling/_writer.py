"""Append tiles to the zarr arrays and ``tiles.jsonl`` of a dataset being written.

Arrays are created with an upper bound on the number of tiles (those that
passed the tissue filter) and shrunk to the tiles kept when closing. Tiles are
buffered and written one shard at a time (zarr v3 sharding: one file holds
``shard`` tiles, each its own chunk ``(1, ...)``), so memory stays bounded by
one shard whatever the slide size, and the folder holds a few files per shard
instead of one per tile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARD_BYTES = 32 * 2**20
"""Target uncompressed size of one shard of the images array."""


@dataclass
class TileResult:
    """One tile that passed the filters, ready to write."""

    images: np.ndarray           # uint8 (n_inputs, S, S, 3)
    label: np.ndarray            # uint8 (S, S)
    points: np.ndarray | None    # float32 (S, S)
    record: dict[str, Any]       # the tiles.jsonl entry, without "index"


def shard_tiles(n_inputs: int, size: int) -> int:
    """Tiles per shard so that one images shard holds about :data:`SHARD_BYTES`."""
    return int(np.clip(SHARD_BYTES // (n_inputs * size * size * 3), 1, 64))


class TileWriter:
    """Writes ``tiles.zarr`` (images, labels, points) and ``tiles.jsonl`` under ``root``."""

    def __init__(self, root: Path, n_max: int, n_inputs: int, size: int,
                 with_points: bool) -> None:
        import zarr
        from zarr.codecs import ZstdCodec

        self.shard = shard_tiles(n_inputs, size)
        n_max = max(int(n_max), 1)
        group = zarr.open_group(root / "tiles.zarr", mode="w")

        def make(name: str, tail: tuple[int, ...], dtype: str, **kw: Any) -> Any:
            return group.create_array(name, shape=(n_max, *tail), chunks=(1, *tail),
                                      shards=(self.shard, *tail), dtype=dtype, fill_value=0,
                                      **kw)

        # zstd level 1: ~3x faster than zarr's default level for ~5 % more bytes on H&E
        fast = {"compressors": ZstdCodec(level=1)}
        self.arrays = {"images": make("images", (n_inputs, size, size, 3), "uint8", **fast),
                       "labels": make("labels", (size, size), "uint8")}
        if with_points:
            self.arrays["points"] = make("points", (size, size), "float16")
        self._jsonl = (root / "tiles.jsonl").open("w")
        self._buf: list[TileResult] = []
        self.n = 0

    @property
    def count(self) -> int:
        """Tiles added so far (written or queued)."""
        return self.n + len(self._buf)

    def add(self, tile: TileResult) -> None:
        """Queue one tile; written when a shard is full."""
        self._buf.append(tile)
        if len(self._buf) >= self.shard:
            self.flush()

    def flush(self) -> None:
        """Write the queued tiles to the arrays and their records to ``tiles.jsonl``."""
        if not self._buf:
            return
        lo, hi = self.n, self.n + len(self._buf)
        self.arrays["images"][lo:hi] = np.stack([t.images for t in self._buf])
        self.arrays["labels"][lo:hi] = np.stack([t.label for t in self._buf])
        if "points" in self.arrays:
            self.arrays["points"][lo:hi] = np.stack(
                [t.points for t in self._buf]).astype(np.float16)
        for k, t in enumerate(self._buf):
            self._jsonl.write(json.dumps({"index": lo + k, **t.record}) + "\n")
        self.n = hi
        self._buf.clear()

    def close(self) -> None:
        """Flush, shrink the arrays to the tiles written and close ``tiles.jsonl``."""
        self.flush()
        for arr in self.arrays.values():
            arr.resize((self.n, *arr.shape[1:]))
        self._jsonl.close()

    def abort(self) -> None:
        """Close the open file without flushing (the caller removes the folder)."""
        self._buf.clear()
        self._jsonl.close()
