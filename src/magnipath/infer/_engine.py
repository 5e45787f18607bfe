"""Whole-slide inference: sliding windows, batched on the device, stitched out of core.

Reads run in a pool of threads (the decoders release the GIL) ahead of the
model, so decoding overlaps compute; batches go to the device with pinned
memory and ``torch.inference_mode`` (mixed precision on CUDA); finished output
chunks go straight to the zarr store, so memory stays flat in slide size.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magnipath.geometry import TileGeometry
from magnipath.infer._store import PredictionStore
from magnipath.infer._windows import WindowPlan, blend_weights
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.types import Box


@dataclass(frozen=True)
class InferConfig:
    """Settings of one inference run.

    Attributes
    ----------
    stride : int or None
        Window step in target pixels; default the target size (no overlap, DMMN).
        Overlapping windows are blended with a raised-cosine weight.
    batch_size : int
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16).
    tissue_mask : bool
        Skip windows without tissue (Otsu mask, :mod:`magnipath.tissue`).
    min_tissue : float
        Keep a window when its tissue fraction exceeds this (0: any tissue).
    region : Box or None
        Level-0 ``(x, y, w, h)`` to predict; default the whole slide.
    probabilities : bool
        Also store per-class probabilities (uint8).
    workers : int
        Reader threads.
    overwrite : bool
        Replace a store that holds another run's result.
    chunk : int or None
        Output chunk side in target pixels (default: a multiple of the window near 1024).
    """

    stride: int | None = None
    batch_size: int = 8
    device: str = "auto"
    amp: bool = True
    tissue_mask: bool = True
    min_tissue: float = 0.0
    region: Box | None = None
    probabilities: bool = False
    workers: int = 2
    overwrite: bool = False
    chunk: int | None = None


@dataclass
class InferResult:
    """What a run produced (paths and counts) and how fast it went."""

    store: Path
    slide: Path
    out_shape: tuple[int, int]
    target_mpp: float
    origin: tuple[float, float]
    downsample: float
    n_windows: int
    n_skipped: int
    n_resumed_chunks: int
    seconds: float
    windows_per_s: float
    forward_seconds: float
    device: str
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["store"], d["slide"] = str(self.store), str(self.slide)
        return d


def _signature(slide, card, region: Box, stride: int, model_path: str) -> dict:
    card_digest = hashlib.sha1(repr(sorted(card.to_dict().items(), key=str)).encode()).hexdigest()
    return {"slide": str(Path(slide.path).resolve()), "slide_size": [slide.width, slide.height],
            "slide_mpp": slide.mpp, "model": model_path, "card": card_digest[:16],
            "region": [float(v) for v in region], "stride": stride}


def _fill_label(card) -> int:
    """Label of pixels no window predicted: the 'Background' class if any, else ignore."""
    for c in card.classes.classes:
        if c.name.lower() == "background":
            return c.index
    return card.ignore_index


class _Reader:
    """Reads the inputs of windows in a thread pool, ahead of the model."""

    def __init__(self, slide, geometry: TileGeometry, origin: tuple[float, float], d: float,
                 workers: int) -> None:
        self.slide, self.geometry, self.origin, self.d = slide, geometry, origin, d
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="magnipath-read")
        self.read_s = 0.0

    def target_box(self, row: int, col: int) -> Box:
        size = self.geometry.target_size
        return (self.origin[0] + col * self.d, self.origin[1] + row * self.d,
                size * self.d, size * self.d)

    def read(self, row: int, col: int) -> np.ndarray:
        t0 = time.perf_counter()
        boxes = self.geometry.input_boxes(self.target_box(row, col), self.slide.mpp)
        out = np.stack([self.slide.read_region(b, mpp=inp.mpp, out_shape=(inp.size, inp.size))
                        for b, inp in zip(boxes, self.geometry.inputs, strict=True)])
        self.read_s += time.perf_counter() - t0
        return out

    def submit(self, row: int, col: int) -> Future:
        return self.pool.submit(self.read, row, col)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _todo(plan: WindowPlan, store: PredictionStore, keep: np.ndarray
          ) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Chunks not yet done, with the kept windows that feed each, chunk-major."""
    ny, nx = plan.chunk_grid
    for cy in range(ny):
        for cx in range(nx):
            if (cy, cx) in store.done:
                continue
            idx = plan.windows_of_chunk(cy, cx)
            yield (cy, cx), idx[keep[idx]]


def run_windows(model, card, slide, plan: WindowPlan, store: PredictionStore, keep: np.ndarray,
                reader: _Reader, *, batch_size: int, device, amp_dtype, fill: int,
                progress: ProgressCallback | None, cancel: CancelCallback | None) -> dict:
    """Predict every kept window of every unfinished chunk and write the chunks."""
    import torch

    from magnipath.checkpoint import normalize_inputs

    weights = blend_weights(plan.size, plan.stride)
    n_classes = card.n_classes
    chunks = list(_todo(plan, store, keep))
    total = sum(len(ix) for _, ix in chunks)
    # each window is read and predicted once per chunk it feeds (once without overlap)
    queue: deque[tuple[int, Future]] = deque()
    order = [(ci, int(w)) for ci, (_, ix) in enumerate(chunks) for w in ix]
    pending = iter(order)
    prefetch = max(2 * batch_size, 2 * reader.pool._max_workers)
    acc: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    left = {ci: len(ix) for ci, (_, ix) in enumerate(chunks)}
    forward_s, done = 0.0, 0
    pin = device.type == "cuda"
    want_probs = store.probabilities is not None

    def fill_queue() -> None:
        while len(queue) < prefetch:
            nxt = next(pending, None)
            if nxt is None:
                return
            _ci, w = nxt
            r, c = plan.windows[w]
            queue.append((nxt, reader.submit(int(r), int(c))))

    def finish_chunk(ci: int) -> None:
        (cy, cx), _ = chunks[ci]
        extent = plan.chunk_extent(cy, cx)
        h, w = extent[1] - extent[0], extent[3] - extent[2]
        if ci in acc:
            a, ws = acc.pop(ci)
            with np.errstate(invalid="ignore", divide="ignore"):
                p = a / ws
            labels = np.where(ws > 0, p.argmax(0), fill).astype(np.uint8)
            probs = (np.where(ws > 0, np.rint(np.nan_to_num(p) * 255), 0).astype(np.uint8)
                     if want_probs else None)
        else:
            labels = np.full((h, w), fill, np.uint8)
            probs = np.zeros((n_classes, h, w), np.uint8) if want_probs else None
        store.write_chunk(cy, cx, extent, labels, probs)

    for ci, (_, ix) in enumerate(chunks):  # chunks with no kept window are final already
        if len(ix) == 0:
            finish_chunk(ci)
    fill_queue()
    while queue:
        check_cancel(cancel)
        batch = []
        while queue and len(batch) < batch_size:
            key, fut = queue.popleft()
            batch.append((key, fut.result()))
        fill_queue()
        images = torch.from_numpy(np.stack([b[1] for b in batch]))
        if pin:
            images = images.pin_memory()
        images = images.to(device, non_blocking=True)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            logits = model(normalize_inputs(images, card.normalisation))
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        forward_s += time.perf_counter() - t0
        for ((ci, w), _), p in zip(batch, probs, strict=True):
            (cy, cx), _ = chunks[ci]
            r0, r1, c0, c1 = plan.chunk_extent(cy, cx)
            if ci not in acc:
                acc[ci] = (np.zeros((n_classes, r1 - r0, c1 - c0), np.float32),
                           np.zeros((r1 - r0, c1 - c0), np.float32))
            a, ws = acc[ci]
            wr, wc = (int(v) for v in plan.windows[w])
            # intersection of the window with the chunk, in both frames
            y0, y1 = max(wr, r0), min(wr + plan.size, r1)
            x0, x1 = max(wc, c0), min(wc + plan.size, c1)
            pw = weights[y0 - wr:y1 - wr, x0 - wc:x1 - wc]
            a[:, y0 - r0:y1 - r0, x0 - c0:x1 - c0] += p[:, y0 - wr:y1 - wr, x0 - wc:x1 - wc] * pw
            ws[y0 - r0:y1 - r0, x0 - c0:x1 - c0] += pw
            left[ci] -= 1
            if left[ci] == 0:
                finish_chunk(ci)
        done += len(batch)
        report(progress, "infer", done, total, chunks_left=sum(v > 0 for v in left.values()))
    return {"forward_s": forward_s, "windows_run": total, "chunks_written": len(chunks)}
