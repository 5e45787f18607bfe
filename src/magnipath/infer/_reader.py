"""The reader pool: window inputs read from the slide in threads, ahead of the model."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from magnipath.geometry import TileGeometry
from magnipath.types import Box


class WindowReader:
    """Reads the inputs of windows in a pool of threads (the decoders release the GIL).

    Parameters
    ----------
    slide : magnipath.slide.Slide
        An open slide (its reads are thread-safe).
    geometry : TileGeometry
        The model's input geometry (target first, then concentric contexts).
    origin : (float, float)
        Level-0 ``(x, y)`` of output pixel ``(0, 0)``'s top-left corner.
    d : float
        Level-0 pixels per output pixel (``target_mpp / slide.mpp``).
    workers : int
        Reader threads.
    """

    def __init__(self, slide, geometry: TileGeometry, origin: tuple[float, float], d: float,
                 workers: int) -> None:
        self.slide, self.geometry, self.origin, self.d = slide, geometry, origin, d
        self.workers = max(1, int(workers))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="magnipath-read")
        self.read_s = 0.0
        self.n_read = 0
        self._lock = threading.Lock()
        self.transform = None  # optional uint8 (n, S, S, 3) -> same (stain normalisation)

    def target_box(self, row: int, col: int) -> Box:
        """Level-0 ``(x, y, w, h)`` of the window whose top-left output pixel is ``(row, col)``."""
        side = self.geometry.target_size * self.d
        return (self.origin[0] + col * self.d, self.origin[1] + row * self.d, side, side)

    def target_boxes(self, windows: np.ndarray) -> np.ndarray:
        """``(N, 4)`` level-0 boxes of ``(N, 2)`` window corners ``(row, col)``."""
        w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
        side = self.geometry.target_size * self.d
        return np.column_stack([self.origin[0] + w[:, 1] * self.d,
                                self.origin[1] + w[:, 0] * self.d,
                                np.full(len(w), side), np.full(len(w), side)])

    def read(self, row: int, col: int) -> np.ndarray:
        """Inputs of one window: ``(n_inputs, S, S, 3)`` uint8, zero outside the slide."""
        t0 = time.perf_counter()
        boxes = self.geometry.input_boxes(self.target_box(row, col), self.slide.mpp)
        out = np.stack([self.slide.read_region(b, mpp=inp.mpp, out_shape=(inp.size, inp.size))
                        for b, inp in zip(boxes, self.geometry.inputs, strict=True)])
        if self.transform is not None:
            out = self.transform(out)
        dt = time.perf_counter() - t0
        with self._lock:
            self.read_s += dt
            self.n_read += 1
        return out

    def submit(self, row: int, col: int) -> Future:
        """Schedule :meth:`read` of one window; returns its future."""
        return self.pool.submit(self.read, row, col)

    def close(self) -> None:
        """Stop the threads (queued reads are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
