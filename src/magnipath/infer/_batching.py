"""``--batch-size auto``: the batch size from the device's free memory."""

from __future__ import annotations

CPU_BATCH = 8
"""Batch size on a CPU (and MPS): larger batches do not run faster there."""

MAX_BATCH = 256
"""Upper bound of an automatic batch size (more gains nothing on an H100/H200)."""


def auto_batch_size(model, card, device, amp_dtype, *, channels_last: bool,
                    fraction: float = 0.5, probe: int = 2) -> int:
    """A batch size that fits ``fraction`` of the free device memory.

    On CUDA the model runs once on ``probe`` zero windows (under the run's
    precision and memory format) and the peak memory of that forward, per
    window, sizes the batch: ``fraction * free / per_window``, rounded down to a
    multiple of 8 (of 1 below 8) within ``1 .. MAX_BATCH``. Elsewhere
    :data:`CPU_BATCH`.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode, on ``device``.
    card : ModelCard
        Its geometry gives the inputs (count and side, target pixels).
    device : torch.device
    amp_dtype : torch.dtype or None
    channels_last : bool
    fraction : float
        Share of the free memory the batches may take (the rest: the CUDA
        context, cuDNN workspaces, the next batch's copy).
    probe : int
        Windows of the probe forward.

    Returns
    -------
    int
    """
    import torch

    from magnipath.checkpoint import normalize_inputs

    if device.type != "cuda":
        return CPU_BATCH
    g = card.input_geometry
    s = g.target_size
    x = torch.zeros((probe, g.n_inputs, s, s, 3), dtype=torch.uint8, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=amp_dtype,
                                                enabled=amp_dtype is not None):
        logits = model(normalize_inputs(x, card.normalisation, channels_last=channels_last))
        torch.max(logits, dim=1)
    torch.cuda.synchronize(device)
    per_window = max(1, torch.cuda.max_memory_allocated(device) - base) / probe
    del x, logits
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    n = int(fraction * free / per_window)
    n = max(1, min(MAX_BATCH, n))
    return n - n % 8 if n >= 8 else n
