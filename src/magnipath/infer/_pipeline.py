"""The stages of the pipelined engine: host ring, device stage, stitching writer.

Data flow of one batch (see :func:`magnipath.infer._engine.run_windows`)::

    reader threads --(uint8 windows)--> host ring slot (pinned on CUDA)
      --(H2D on a side stream)--> forward on the compute stream (argmax there)
      --(async D2H of uint8 labels into pinned memory)--> retire (main thread)
      --> stitcher thread (chunk accumulators) --> chunk writer thread (zarr)

On a CPU the same code runs: streams and events are absent, pinned memory is
not used and the forward is synchronous, so "in flight" batches are already
finished when launched. Every stage keeps batch order; an error in any
thread surfaces once, in the main thread, as the original exception.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DeviceStage", "HostRing", "InFlight", "Stitcher"]


class HostRing:
    """A ring of ``n`` host buffers of one batch each, pinned when the device is CUDA.

    A slot is reused only after the batch that last used it was retired (its
    device copies have finished), which :func:`run_windows` guarantees by
    keeping fewer batches in flight than slots.

    Parameters
    ----------
    n : int
        Slots (>= in-flight depth + 1).
    shape : tuple of int
        ``(batch, n_inputs, S, S, 3)`` uint8 of one slot.
    pin : bool
        Page-locked memory (CUDA: needed for asynchronous host-to-device copies).
    """

    def __init__(self, n: int, shape: tuple[int, ...], pin: bool) -> None:
        import torch

        self.slots = [torch.empty(shape, dtype=torch.uint8, pin_memory=pin) for _ in range(n)]
        self._next = 0

    def take(self):
        """The next slot (a ``torch.uint8`` tensor of the ring's shape), round robin."""
        slot = self.slots[self._next]
        self._next = (self._next + 1) % len(self.slots)
        return slot


@dataclass
class InFlight:
    """One launched batch: its window keys and where its output will be."""

    keys: list
    out: object  # torch tensor on the host (pinned when CUDA) or None until ready
    done: object = None  # torch.cuda.Event, None on a CPU
    events: tuple = ()  # (copy start, copy end, forward end) CUDA events, timing only
    cpu_forward_s: float = 0.0


@dataclass
class StageTimes:
    """Seconds per stage, summed over batches (``*_gpu_s`` from CUDA events)."""

    read_wait_s: float = 0.0
    collate_s: float = 0.0
    launch_s: float = 0.0
    retire_wait_s: float = 0.0
    copy_gpu_s: float = 0.0
    forward_gpu_s: float = 0.0
    forward_s: float = 0.0
    batches: int = 0
    extra: dict = field(default_factory=dict)


class DeviceStage:
    """Runs batches on the device: copy in, normalise, forward, argmax/softmax, copy out.

    Parameters
    ----------
    model : torch.nn.Module
    card : ModelCard
    device : torch.device
    amp_dtype : torch.dtype or None
        Autocast dtype; None: float32.
    blend : bool
        Return softmax probabilities (float32) instead of uint8 labels.
    channels_last : bool
        Inputs in channels-last memory format (the model too).
    check : callable
        ``check(logits, n)`` raises on a malformed output (called on the first batch).
    """

    def __init__(self, model, card, device, amp_dtype, *, blend: bool, channels_last: bool,
                 check) -> None:
        import torch

        self.model, self.card, self.device = model, card, device
        self.amp_dtype, self.blend, self.channels_last = amp_dtype, blend, channels_last
        self.check, self.checked = check, False
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.times = StageTimes()
        # normalisation constants made once, on the device: a per-batch torch.tensor(...,
        # device="cuda") copies from pageable memory, which waits for the stream (the
        # previous forward) and would stall the pipeline
        from magnipath.checkpoint import DEFAULT_NORMALISATION

        norm = card.normalisation or DEFAULT_NORMALISATION
        self.scale = float(norm.get("scale", 1 / 255))
        self.mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, 1, 3, 1, 1).to(device)
        self.std = torch.tensor(norm["std"], dtype=torch.float32).view(1, 1, 3, 1, 1).to(device)

    def normalize(self, images) -> list:
        """The model inputs of a uint8 ``(B, n_inputs, S, S, 3)`` batch on the device: the
        arithmetic of :func:`magnipath.checkpoint.normalize_inputs`, step for step (same
        float32 values), with constants kept on the device."""
        import torch

        x = images.permute(0, 1, 4, 2, 3).float() * self.scale
        x = (x - self.mean) / self.std
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return [x[:, k].contiguous(memory_format=fmt) for k in range(x.shape[1])]

    def launch(self, host, n: int, keys: list) -> InFlight:
        """Start batch ``host[:n]`` (uint8 ``(B, n_inputs, S, S, 3)``; on the host or,
        already decoded, on the device) and return without waiting for the device."""
        import torch

        t0 = time.perf_counter()
        batch = host[:n]
        events: tuple = ()
        if self.cuda:
            compute = torch.cuda.current_stream(self.device)
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            if batch.device.type == "cuda":  # decoded on the device, on the reader's stream
                images = batch
                images.record_stream(compute)
                ev[0].record(compute)
                ev[1].record(compute)
            else:
                with torch.cuda.stream(self.copy_stream):
                    ev[0].record(self.copy_stream)
                    images = batch.to(self.device, non_blocking=True)
                    ev[1].record(self.copy_stream)
                compute.wait_event(ev[1])
                # the copy's memory belongs to the copy stream's pool: keep it alive
                images.record_stream(compute)
            events = tuple(ev)
        else:
            images = batch.to(self.device)
        t1 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype,
                                                    enabled=self.amp_dtype is not None):
            logits = self.model(self.normalize(images))
            if not self.checked:
                self.check(logits, n)
                self.checked = True
            if self.blend:
                result = torch.softmax(logits.float(), dim=1)
            else:  # torch.max is several times faster than argmax on CPU here
                result = torch.max(logits, dim=1).indices.to(torch.uint8)
        if self.cuda:
            events[2].record()
            out = torch.empty(result.shape, dtype=result.dtype, pin_memory=True)
            out.copy_(result, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            cpu_forward = 0.0
        else:
            out, done = result, None
            cpu_forward = time.perf_counter() - t1
        self.times.launch_s += time.perf_counter() - t0
        self.times.forward_s += cpu_forward
        self.times.batches += 1
        return InFlight(keys, out, done, events, cpu_forward)

    def retire(self, batch: InFlight) -> np.ndarray:
        """Wait for a launched batch; its output as a numpy array (labels or probabilities)."""
        t0 = time.perf_counter()
        if batch.done is not None:
            batch.done.synchronize()
            ev = batch.events
            copy_s = ev[0].elapsed_time(ev[1]) / 1e3
            fwd_s = ev[1].elapsed_time(ev[2]) / 1e3
            self.times.copy_gpu_s += copy_s
            self.times.forward_gpu_s += fwd_s
            self.times.forward_s += fwd_s
        self.times.retire_wait_s += time.perf_counter() - t0
        return batch.out.numpy()


class Stitcher:
    """Stitches retired batches into chunk accumulators in one thread, in batch order,
    and hands finished chunks to a chunk writer (a second thread, zarr compression).

    Parameters
    ----------
    stitch : callable
        ``stitch(keys, out)``, run in the stitcher thread; may call ``write``.
    depth : int
        Retired batches waiting at most (the main thread blocks beyond).

    Notes
    -----
    After the first error (in ``stitch`` or in a chunk write) later batches are
    dropped without blocking the main thread; :meth:`check` and :meth:`close`
    raise that error, once.
    """

    _STOP = object()

    def __init__(self, stitch, depth: int = 4) -> None:
        self.stitch = stitch
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self._raised = False
        self.stitch_s = 0.0
        self.thread = threading.Thread(target=self._run, name="magnipath-stitch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is self._STOP:
                return
            if self.error is not None:
                continue  # drain: the main thread must never block on a dead consumer
            t0 = time.perf_counter()
            try:
                self.stitch(*item)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.error = e
            self.stitch_s += time.perf_counter() - t0

    def check(self) -> None:
        """Raise the stitcher's first error in the calling (main) thread, once."""
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def put(self, keys: list, out: np.ndarray) -> None:
        """Queue a retired batch (blocks while ``depth`` batches wait)."""
        self.check()
        self.q.put((keys, out))

    def close(self, raise_errors: bool = True) -> None:
        """Finish the queued batches, stop the thread; raise its error unless told not to."""
        self.q.put(self._STOP)
        self.thread.join()
        if raise_errors:
            self.check()


class ChunkWriter:
    """Writes finished chunks in one background thread, at most ``depth`` pending.

    ``submit`` raises the first failed write (in the caller's thread).
    """

    def __init__(self, write, depth: int = 4) -> None:
        self.write, self.depth = write, depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="magnipath-write")
        self.pending: deque[Future] = deque()
        self.write_s = 0.0
        self.n_written = 0

    def _write(self, *args) -> None:
        t0 = time.perf_counter()
        self.write(*args)
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
