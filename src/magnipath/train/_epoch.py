"""One training epoch and one validation pass, with timing of the data pipeline."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from magnipath._errors import ModelError
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report


class Runner:
    """Runs batches through a model: optimisation steps and validation.

    Parameters
    ----------
    model, loss_fn, optimizer
        The network, the loss ``loss(logits, target)`` and its optimiser.
    scaler : torch.amp.GradScaler or None
        Gradient scaler for float16 autocast.
    device : torch.device
    amp : torch.dtype or None
        Autocast dtype (None: float32).
    channels_last : bool
        Feed inputs in channels-last memory format.
    n_inputs : int
        How many of the sample's inputs the model takes (target first).
    n_classes, ignore_index : int
    class_names : list of str
        One per output channel (for the metrics summary).
    progress, cancel
        Callbacks (see :mod:`magnipath.progress`).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scaler: Any, *, device: torch.device,
                 amp: torch.dtype | None, channels_last: bool, n_inputs: int, n_classes: int,
                 ignore_index: int, class_names: list[str],
                 progress: ProgressCallback | None, cancel: CancelCallback | None) -> None:
        self.model, self.loss_fn, self.optimizer, self.scaler = model, loss_fn, optimizer, scaler
        self.device, self.amp, self.channels_last = device, amp, channels_last
        self.n_inputs, self.n_classes, self.ignore = n_inputs, n_classes, ignore_index
        self.names = class_names
        self.progress, self.cancel = progress, cancel
        self.lr_at: Any = None  # optional: global step (0-based) -> learning rate

    def _inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Batch ``(B, n_inputs, 3, S, S)`` -> list of ``(B, 3, S, S)`` on the device."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(self.device, non_blocking=True)  # one (pinned) transfer, then split
        return [x[:, k].contiguous(memory_format=fmt) for k in range(self.n_inputs)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32,
                            enabled=self.amp is not None):
            return self.model(self._inputs(x))

    def train_epoch(self, loader: Any, epoch: int, deadline: float | None) -> dict:
        """One pass over ``loader``; returns loss, steps, samples and timings.

        ``deadline`` (``time.perf_counter()`` value) ends the epoch early after the
        batch that passes it (``stopped`` True).
        """
        self.model.train()
        n_batches = len(loader)
        it = iter(loader)
        wait = busy = loss_sum = 0.0
        steps = samples = 0
        stopped = False
        t_epoch = time.perf_counter()
        for b in range(n_batches):
            check_cancel(self.cancel)
            t0 = time.perf_counter()
            x, y = next(it)
            t1 = time.perf_counter()
            if not bool((y != self.ignore).any()):
                continue  # no labelled pixel: nothing to learn from this batch
            y_dev = y.to(self.device, non_blocking=True)
            if self.lr_at is not None:
                lr = float(self.lr_at((epoch - 1) * n_batches + b))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self._forward(x).float(), y_dev)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            value = float(loss.detach())  # waits for the device
            t2 = time.perf_counter()
            if not math.isfinite(value):
                raise ModelError(f"training diverged: the loss is {value} at epoch {epoch}, "
                                 f"batch {b + 1}; lower the learning rate (--lr)")
            wait += t1 - t0
            busy += t2 - t1
            loss_sum += value * len(y)
            steps += 1
            samples += len(y)
            report(self.progress, "train/batch", b + 1, n_batches, epoch=epoch, loss=value)
            if deadline is not None and time.perf_counter() > deadline:
                stopped = b + 1 < n_batches
                break
        del it
        seconds = time.perf_counter() - t_epoch
        return {"loss": loss_sum / samples if samples else math.nan, "steps": steps,
                "samples": samples, "seconds": round(seconds, 4),
                "step_s": (wait + busy) / steps if steps else math.nan,
                "data_wait_share": wait / (wait + busy) if steps else math.nan,
                "samples_per_s": samples / (wait + busy) if steps else math.nan,
                "stopped": stopped}

    @torch.no_grad()
    def validate(self, loader: Any, epoch: int) -> dict:
        """Loss and confusion-matrix metrics (``ConfusionMatrix.summary``) over ``loader``."""
        from magnipath.metrics import ConfusionMatrix

        self.model.eval()
        cm = ConfusionMatrix(self.n_classes, self.ignore)
        loss_sum, n = 0.0, 0
        t0 = time.perf_counter()
        n_batches = len(loader)
        for b, (x, y) in enumerate(loader):
            check_cancel(self.cancel)
            logits = self._forward(x).float()
            if bool((y != self.ignore).any()):
                loss_sum += float(self.loss_fn(logits, y.to(self.device))) * len(y)
                n += len(y)
            cm.update(logits.argmax(1).cpu().numpy(), y.numpy())
            report(self.progress, "train/val", b + 1, n_batches, epoch=epoch)
        return {"loss": loss_sum / n if n else math.nan,
                "summary": cm.summary(self.names, nan_as_none=True),
                "seconds": round(time.perf_counter() - t0, 4)}
