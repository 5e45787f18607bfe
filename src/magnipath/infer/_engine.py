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
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from magnipath._errors import Cancelled, ModelError
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


def _model_for(model, compile_model: bool):
    """``model``, compiled with ``torch.compile`` when asked (CUDA: several times fewer
    kernel launches; the first batches pay the compile time)."""
    if not compile_model:
        return model
    import importlib.util
    import sys

    import torch

    triton_hidden = "triton" in sys.modules and sys.modules["triton"] is None
    if str(next(model.parameters(), torch.empty(0)).device).startswith("cuda") and (
            triton_hidden or importlib.util.find_spec("triton") is None):
        raise InferError("compile: torch.compile on CUDA needs triton, which is not usable in "
                         "this process (napari's process hides it); run without compile, or "
                         "from the command line (magnipath infer --compile)")
    return torch.compile(model, dynamic=False)


def run_windows(model, card, plan: WindowPlan, store: PredictionStore, keep: np.ndarray,
                reader: WindowReader, *, batch_size: int, device, amp_dtype, fill: int,
                progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None, depth: int | None = None,
                compile_model: bool = False) -> dict:
    """Predict every kept window of every unfinished chunk and write the chunks.

    A pipeline (:mod:`magnipath.infer._pipeline`): reader threads fill a ring
    of host buffers (pinned on CUDA); each batch is copied to the device on a
    side stream while the previous batch's forward runs; the argmax (or the
    softmax when blending) is taken on the device and only its result is copied
    back, asynchronously; the main thread blocks only to retire the oldest of
    ``depth`` batches in flight, whose output a stitcher thread pastes into
    chunk accumulators; finished chunks are written by a writer thread. Batch
    composition and order are those of the plan, so results do not depend on
    the pipeline (bit-identical labels in float32).

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
        Per-window reads (``submit(row, col)``), or a batch reader with
        ``submit_batch(rows_cols)`` returning a future of a uint8
        ``(n, n_inputs, S, S, 3)`` tensor, on the host or already on the device
        (:class:`~magnipath.infer._jpeg.JpegBatchReader`).
    batch_size, device, amp_dtype, fill
        Batch size, torch device, autocast dtype (None: float32), fill label.
    progress, cancel : callables, optional
        Progress events (stage ``"infer"``, one per retired batch) and
        cancellation, checked before every batch; finished chunks stay written
        (resume); batches in flight at a cancel are retired (stitched) first.
    depth : int, optional
        Batches in flight on the device (default 2 on CUDA; 0 elsewhere, where the
        forward is synchronous).
    compile_model : bool
        ``torch.compile`` the model (batches padded to ``batch_size``).

    Returns
    -------
    dict
        ``forward_s``, ``windows_run``, ``chunks_written``, ``write_s`` and the
        stage times ``read_wait_s``, ``collate_s``, ``launch_s``,
        ``retire_wait_s``, ``stitch_s`` (wall seconds of that stage in its
        thread), ``copy_gpu_s``, ``forward_gpu_s`` (CUDA event times, 0 on a CPU),
        ``batches``, ``batch_size``, ``depth``.
    """
    import torch

    from magnipath.infer._pipeline import ChunkWriter, DeviceStage, HostRing, Stitcher

    blend = plan.stride < plan.size or store.probabilities is not None
    weights = blend_weights(plan.size, plan.stride)
    n_classes, size = card.n_classes, plan.size
    n_inputs = card.input_geometry.n_inputs
    chunks = list(_todo(plan, store, keep))
    total = sum(len(ix) for _, ix in chunks)
    left = [len(ix) for _, ix in chunks]
    left_main = list(left)
    # each window is read and predicted once per chunk it feeds (once without overlap)
    order = [(ci, int(w)) for ci, (_, ix) in enumerate(chunks) for w in ix]
    cuda = device.type == "cuda"
    depth = (2 if cuda else 0) if depth is None else max(0, int(depth))
    # under mixed precision convolutions are fastest on channels-last tensors
    # (bf16 on an AMX CPU: 2-4x over contiguous; see docs/benchmarks.md)
    channels_last = amp_dtype is not None
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = _model_for(model, compile_model)
    stage = DeviceStage(net, card, device, amp_dtype, blend=blend, channels_last=channels_last,
                        check=lambda logits, n: _check_output(logits, n, n_classes, size,
                                                              card.arch))
    writer = ChunkWriter(store.write_chunk)
    acc: dict[int, tuple] = {}

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

    def stitch(keys: list, out: np.ndarray) -> None:  # runs in the stitcher thread
        for (ci, w), o in zip(keys, out, strict=False):
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

    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batched = hasattr(reader, "submit_batch")
    ahead = max(2, depth + 1)
    win_q: deque[Future] = deque()  # per-window reads, in order
    batch_q: deque[Future] = deque()  # batch reads, in order
    nxt_w, nxt_b = 0, 0
    prefetch = max(2 * batch_size, 4 * getattr(reader, "workers", 1))

    def fill_queue() -> None:
        nonlocal nxt_w, nxt_b
        if batched:
            while len(batch_q) < ahead and nxt_b < len(batches):
                rc = [tuple(int(v) for v in plan.windows[w]) for _, w in batches[nxt_b]]
                batch_q.append(reader.submit_batch(rc))
                nxt_b += 1
            return
        while len(win_q) < prefetch and nxt_w < len(order):
            r, c = plan.windows[order[nxt_w][1]]
            win_q.append(reader.submit(int(r), int(c)))
            nxt_w += 1

    ring = None if batched or not batches else HostRing(
        depth + 2, (batch_size, n_inputs, size, size, 3), pin=cuda)
    inflight: deque = deque()
    times = stage.times
    done = 0
    stitcher = Stitcher(stitch)

    def retire_one() -> None:
        nonlocal done
        b = inflight.popleft()
        out = stage.retire(b)
        stitcher.put(b.keys, out)
        for ci, _ in b.keys:
            left_main[ci] -= 1
        done += len(b.keys)
        report(progress, "infer", done, total, chunks_left=sum(1 for v in left_main if v > 0))

    try:
        for ci, n in enumerate(left):  # chunks with no kept window are final already
            if n == 0:
                finish_chunk(ci)
        fill_queue()
        for keys in batches:
            check_cancel(cancel)
            stitcher.check()
            t0 = time.perf_counter()
            if batched:
                host = batch_q.popleft().result()
                n_run = len(keys)
                times.read_wait_s += time.perf_counter() - t0
            else:
                host = ring.take()
                for j in range(len(keys)):
                    t1 = time.perf_counter()
                    arr = win_q.popleft().result()
                    t2 = time.perf_counter()
                    host[j].copy_(torch.from_numpy(arr))
                    times.read_wait_s += t2 - t1
                    times.collate_s += time.perf_counter() - t2
                n_run = batch_size if compile_model else len(keys)
            fill_queue()
            inflight.append(stage.launch(host, n_run, keys))
            while len(inflight) > depth:
                retire_one()
        while inflight:
            retire_one()
    except Cancelled:
        # the batches in flight are computed already (or nearly): keep their chunks
        try:
            while inflight:
                retire_one()
        except BaseException:  # noqa: BLE001 - the cancel is what the caller asked for
            inflight.clear()
        stitcher.close(raise_errors=False)
        writer.close(raise_errors=False)
        raise
    except BaseException:
        inflight.clear()
        stitcher.close(raise_errors=False)
        writer.close(raise_errors=False)
        raise
    try:
        stitcher.close()
    except BaseException:
        writer.close(raise_errors=False)
        raise
    writer.close()
    return {"forward_s": times.forward_s, "windows_run": total, "chunks_written": len(chunks),
            "write_s": writer.write_s, "read_wait_s": times.read_wait_s,
            "collate_s": times.collate_s, "launch_s": times.launch_s,
            "retire_wait_s": times.retire_wait_s, "stitch_s": stitcher.stitch_s,
            "copy_gpu_s": times.copy_gpu_s, "forward_gpu_s": times.forward_gpu_s,
            "batches": times.batches, "batch_size": int(batch_size), "depth": depth}
