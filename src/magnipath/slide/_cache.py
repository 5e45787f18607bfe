"""A thread-safe LRU cache of decoded tiles, bounded in bytes.

Several patches usually share one TIFF tile (a 512 px JPEG tile holds four
256 px patches at the level it belongs to), so each decoded tile is kept until
the cache needs the room. Threads asking for a tile that another thread is
decoding wait for that decode instead of repeating it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future

import numpy as np

DEFAULT_CACHE_BYTES = 256 * 2**20
"""Default bound of the decoded-tile cache of one slide: 256 MiB."""


class TileCache:
    """Least-recently-used cache of numpy arrays, bounded by their total ``nbytes``.

    Parameters
    ----------
    max_bytes : int
        Most bytes of decoded arrays kept at once; 0 disables caching (every
        call decodes).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes of decoded arrays held now."""
        return self._bytes

    def get(self, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        """Return the array cached under ``key``, calling ``make()`` once if absent.

        The returned array is shared: callers must not modify it.
        """
        with self._lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return arr
            fut = self._pending.get(key)
            owner = fut is None
            if owner:
                fut = self._pending[key] = Future()
                self.misses += 1
        if not owner:
            return fut.result()
        try:
            arr = make()
        except BaseException as e:
            with self._lock:
                del self._pending[key]
            fut.set_exception(e)
            raise
        arr.setflags(write=False)
        with self._lock:
            del self._pending[key]
            if 0 < arr.nbytes <= self.max_bytes:
                self._items[key] = arr
                self._bytes += arr.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        fut.set_result(arr)
        return arr

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is cached or being decoded now."""
        with self._lock:
            return key in self._items or key in self._pending

    def clear(self) -> None:
        """Drop every cached array."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
