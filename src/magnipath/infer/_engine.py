"""Whole-slide inference: sliding windows, batched on the device, stitched out of core.

Reads run in a pool of threads (:class:`~magnipath.infer._reader.WindowReader`;
the decoders release the GIL) ahead of the model, so decoding overlaps compute;
batches go to the device with pinned memory and ``torch.inference_mode`` (mixed
precision on CUDA); finished output chunks are written to the zarr store by a
background thread, so memory stays flat in slide size.

Without overlap and without stored probabilities (the DMMN setting) the argmax
is taken on the device and only uint8 labels come back; with overlap, softmax
probabilities are blended with :func:`~magnipath.infer._windows.blend_weights`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from magnipath._errors import ModelError
from magnipath.infer._config import InferConfig, InferError, InferResult  # noqa: F401 - re-export
from magnipath.infer._reader import WindowReader
from magnipath.infer._store import PredictionStore
from magnipath.infer._windows import WindowPlan, blend_weights
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.types import Box

__all__ = ["card_digest", "fill_label", "run_signature", "run_windows"]


def card_digest(card) -> str:
    """A short stable hash of a model card's content."""
    text = json.dumps(card.to_dict(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def run_signature(slide, card, region: Box, stride: int, model_path: str, *, chunk: int,
                  tissue_mask: bool, min_tissue: float) -> dict:
    """What identifies a run: a store with another signature holds another result."""
    return {"slide": str(Path(slide.path).resolve()), "slide_size": [slide.width, slide.height],
            "slide_mpp": float(slide.mpp), "model": model_path, "card": card_digest(card),
            "region": [float(v) for v in region], "stride": int(stride), "chunk": int(chunk),
            "tissue_mask": bool(tissue_mask), "min_tissue": float(min_tissue)}


def fill_label(card) -> int:
    """Label of pixels no window predicted: the 'Background' class if any, else ignore."""
    for c in card.classes.classes:
        if c.name.lower() == "background":
            return c.index
    return card.ignore_index


class _ChunkWriter:
    """Writes finished chunks in one background thread, at most ``depth`` pending."""

    def __init__(self, store: PredictionStore, depth: int = 4) -> None:
        self.store, self.depth = store, depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="magnipath-write")
        self.pending: deque[Future] = deque()
        self.write_s = 0.0
        self.n_written = 0

    def _write(self, *args) -> None:
        t0 = time.perf_counter()
        self.store.write_chunk(*args)
        self.write_s += time.perf_counter() - t0
        self.n_written += 1

    def submit(self, *args) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.depth):
            self.pending.popleft().result()  # surfaces a failed write early
        self.pending.append(self.pool.submit(self._write, *args))

    def close(self, raise_errors: bool = True) -> None:
        err = None
        while self.pending:
            try:
                self.pending.popleft().result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                err = err or e
        self.pool.shutdown(wait=True)
        if err is not None and raise_errors:
            raise err


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


def _check_output(logits, n: int, n_classes: int, size: int, arch: str) -> None:
    want = (n, n_classes, size, size)
    if tuple(logits.shape) != want:
        raise ModelError(f"the model ({arch}) returned an output of shape {tuple(logits.shape)} "
                         f"for {n} windows; its card promises {want} (batch, classes, y, x); "
                         "the card does not describe this model")


def run_windows(model, card, plan: WindowPlan, store: PredictionStore, keep: np.ndarray,
                reader: WindowReader, *, batch_size: int, device, amp_dtype, fill: int,
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> dict:
    """Predict every kept window of every unfinished chunk and write the chunks.

    Parameters
    ----------
    model : torch.nn.Module
        Called with ``normalize_inputs(batch)`` (a list of ``(B, 3, S, S)``
        tensors), returns logits ``(B, n_classes, S, S)``.
    card : ModelCard
    plan : WindowPlan
        Windows and chunks in output pixels.
    store : PredictionStore
        Chunks in ``store.done`` are skipped; finished chunks are written to it.
    keep : ndarray of bool
        ``(N,)``: windows to predict; the others leave the fill label.
    reader : WindowReader
    batch_size, device, amp_dtype, fill
        Batch size, torch device, autocast dtype (None: float32), fill label.
    progress, cancel : callables, optional
        Progress events (stage ``"infer"``, one per batch) and cancellation,
        checked before every batch; finished chunks stay written (resume).

    Returns
    -------
    dict
        ``forward_s``, ``windows_run``, ``chunks_written``, ``write_s``.
    """
    import torch

    from magnipath.checkpoint import normalize_inputs

    blend = plan.stride < plan.size or store.probabilities is not None
    weights = blend_weights(plan.size, plan.stride)
    n_classes, size = card.n_classes, plan.size
    chunks = list(_todo(plan, store, keep))
    total = sum(len(ix) for _, ix in chunks)
    left = [len(ix) for _, ix in chunks]
    # each window is read and predicted once per chunk it feeds (once without overlap)
    pending = ((ci, int(w)) for ci, (_, ix) in enumerate(chunks) for w in ix)
    queue: deque[tuple[tuple[int, int], Future]] = deque()
    prefetch = max(2 * batch_size, 4 * reader.workers)
    acc: dict[int, tuple] = {}
    forward_s, done, checked = 0.0, 0, False
    pin = device.type == "cuda"
    # under mixed precision convolutions are fastest on channels-last tensors
    # (bf16 on an AMX CPU: 2-4x over contiguous; see docs/benchmarks.md)
    channels_last = amp_dtype is not None
    if channels_last:
        model.to(memory_format=torch.channels_last)
    writer = _ChunkWriter(store)

    def fill_queue() -> None:
        while len(queue) < prefetch:
            nxt = next(pending, None)
            if nxt is None:
                return
            r, c = plan.windows[nxt[1]]
            queue.append((nxt, reader.submit(int(r), int(c))))

    def new_acc(h: int, w: int) -> tuple:
        if blend:
            return (np.zeros((n_classes, h, w), np.float32), np.zeros((h, w), np.float32))
        return (np.full((h, w), fill, np.uint8),)

    def finish_chunk(ci: int) -> None:
        (cy, cx), _ = chunks[ci]
        extent = plan.chunk_extent(cy, cx)
        h, w = extent[1] - extent[0], extent[3] - extent[2]
        a = acc.pop(ci, None) or new_acc(h, w)
        probs = None
        if not blend:
            labels = a[0]
        else:
            total_w = a[1]
            seen = total_w > 0
            p = a[0] / np.where(seen, total_w, 1.0)
            labels = np.where(seen, p.argmax(0), fill).astype(np.uint8)
            if store.probabilities is not None:
                probs = np.rint(p * 255).astype(np.uint8)
        writer.submit(cy, cx, extent, labels, probs)

    try:
        for ci, n in enumerate(left):  # chunks with no kept window are final already
            if n == 0:
                finish_chunk(ci)
        fill_queue()
        while queue:
            check_cancel(cancel)
            keys, arrays = [], []
            while queue and len(keys) < batch_size:
                key, fut = queue.popleft()
                keys.append(key)
                arrays.append(fut.result())
            fill_queue()
            images = torch.from_numpy(np.stack(arrays))
            if pin:
                images = images.pin_memory()
            images = images.to(device, non_blocking=pin)
            t0 = time.perf_counter()
            with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                        enabled=amp_dtype is not None):
                logits = model(normalize_inputs(images, card.normalisation,
                                                channels_last=channels_last))
                if not checked:
                    _check_output(logits, len(keys), n_classes, size, card.arch)
                    checked = True
                if blend:
                    out = torch.softmax(logits.float(), dim=1).cpu().numpy()
                else:  # torch.max is several times faster than argmax on CPU here
                    out = torch.max(logits, dim=1).indices.to(torch.uint8).cpu().numpy()
            forward_s += time.perf_counter() - t0
            for (ci, w), o in zip(keys, out, strict=True):
                (cy, cx), _ = chunks[ci]
                r0, r1, c0, c1 = plan.chunk_extent(cy, cx)
                if ci not in acc:
                    acc[ci] = new_acc(r1 - r0, c1 - c0)
                wr, wc = (int(v) for v in plan.windows[w])
                # intersection of the window with the chunk, in both frames
                y0, y1 = max(wr, r0), min(wr + size, r1)
                x0, x1 = max(wc, c0), min(wc + size, c1)
                dst = (slice(y0 - r0, y1 - r0), slice(x0 - c0, x1 - c0))
                src = (slice(y0 - wr, y1 - wr), slice(x0 - wc, x1 - wc))
                if blend:
                    pw = weights[src]
                    acc[ci][0][(slice(None), *dst)] += o[(slice(None), *src)] * pw
                    acc[ci][1][dst] += pw
                else:
                    acc[ci][0][dst] = o[src]
                left[ci] -= 1
                if left[ci] == 0:
                    finish_chunk(ci)
            done += len(keys)
            report(progress, "infer", done, total,
                   chunks_left=sum(1 for v in left if v > 0))
    except BaseException:
        writer.close(raise_errors=False)
        raise
    writer.close()
    return {"forward_s": forward_s, "windows_run": total, "chunks_written": len(chunks),
            "write_s": writer.write_s}
