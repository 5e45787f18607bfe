"""Choosing the compute device and the mixed-precision type.

``device="auto"`` picks CUDA when a CUDA GPU is usable, then Apple's MPS, then
the CPU. Mixed precision (AMP) is used on CUDA only: bfloat16 where the GPU
supports it (Ampere and newer; no gradient scaler needed), float16 with a
gradient scaler otherwise. On a CPU with native bfloat16 arithmetic (Intel AMX
or AVX512-BF16) mixed precision means bfloat16 autocast, several times faster
than float32 there (measured in ``docs/benchmarks.md``); on other CPUs and on
MPS everything runs in float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnipath._errors import MagnipathError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""Values accepted by :func:`resolve_device` (``"cuda:1"`` etc. also work)."""


class DeviceError(MagnipathError):
    """The requested compute device does not exist on this machine."""


def machine_cores() -> int:
    """CPU cores this process may use (affinity mask, e.g. under ``taskset``; else
    ``os.cpu_count()``)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists here.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        If the device is unknown or not available on this machine.
    """
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r}: no CUDA GPU is usable on this machine; "
                              "use --device cpu or --device auto")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} CUDA "
                              "GPU(s) here; pick cuda:0 .. cuda:N-1")
        return dev
    if name == "mps":
        if not _mps_available():
            raise DeviceError(f"device {device!r}: Apple MPS is not available here; "
                              "use --device cpu or --device auto")
        return torch.device("mps")
    raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for mixed precision on ``device``, or None for float32.

    Parameters
    ----------
    device : torch.device
        Where the model runs.
    enabled : bool
        Whether the user asked for mixed precision.

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16`` on CUDA GPUs that support it and on CPUs with native
        bfloat16 (:func:`cpu_has_native_bf16`), ``torch.float16`` on older CUDA
        GPUs (then train with a gradient scaler, see :func:`needs_grad_scaler`),
        ``None`` on other CPUs, on MPS or when disabled.
    """
    import torch

    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (Intel AMX tiles or AVX512-BF16).

    Elsewhere oneDNN emulates bfloat16, which is slower than float32, so
    :func:`amp_dtype` keeps float32 on such CPUs.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except (RuntimeError, OSError):  # a probe the build lacks behaves as "no"
            continue
    return False


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """Whether training under ``dtype`` autocast needs a gradient scaler (float16 only)."""
    import torch

    return dtype == torch.float16


def describe_device(device: torch.device) -> str:
    """A short human-readable name, e.g. ``"cuda:0 (NVIDIA H100)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def configure_for_training(device: torch.device) -> dict:
    """Backend switches for fast training on ``device``; a no-op on a CPU or MPS.

    On CUDA: ``cudnn.benchmark`` (cuDNN times its convolution algorithms for the
    first batch of each shape and keeps the fastest; training batches have one
    shape) and TF32 matrix products and convolutions for float32 parts (Ampere
    and newer; autocast covers the rest in bf16/fp16). Inference does not call
    this: its float32 labels stay bit-identical to the CPU path's algorithms
    only without TF32.

    Returns
    -------
    dict
        What was switched on (empty off CUDA), for the run's record.
    """
    import torch

    if device.type != "cuda":
        return {}
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return {"cudnn_benchmark": True, "tf32": True}


def loader_options(device: torch.device, workers: int) -> dict:
    """``DataLoader`` keyword arguments that keep ``device`` fed.

    Pinned memory (asynchronous host-to-device copies) on CUDA; persistent
    workers, each preparing ``prefetch_factor`` batches ahead, when there are
    workers (a GPU step of a few ms needs several batches ready).
    """
    opts: dict = {"num_workers": int(workers), "pin_memory": device.type == "cuda",
                  "persistent_workers": workers > 0}
    if workers > 0:
        opts["prefetch_factor"] = 4 if device.type == "cuda" else 2
    return opts
