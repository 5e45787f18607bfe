"""Training-step throughput of every architecture, float32 and mixed precision.

One optimisation step = forward + weighted cross-entropy + backward + SGD step
(the DMMN preset's optimiser) on random 256 px inputs, paper widths, one
process. Modes: ``fp32`` (contiguous tensors), ``bf16`` (autocast bfloat16,
contiguous) and ``bf16-cl`` (autocast bfloat16 with channels-last model and
inputs); the bf16 modes only where :func:`magnipath.device.amp_dtype` gives
bfloat16 (CUDA, or a CPU with AMX / AVX512-BF16). One JSON line per model and
mode: samples/s from the median of the timed steps (after warm-up steps).

Usage::

    benchmarks/bench_training.py [--threads 2] [--batch 2] [--steps 4] [--jsonl FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import emit


def step_times(arch: str, mode: str, args) -> tuple[list[float], int]:
    """Timed steps of ``arch`` in ``mode``; returns (seconds per step, parameters)."""
    import torch

    from magnipath.device import amp_dtype, resolve_device
    from magnipath.losses import build_loss
    from magnipath.models import build_model

    device = resolve_device(args.device)
    amp = amp_dtype(device, mode != "fp32")
    torch.manual_seed(0)
    model = build_model(arch, n_classes=7).to(device)
    x = [torch.rand(args.batch, 3, args.size, args.size, device=device)
         for _ in range(model.n_inputs)]
    if mode == "bf16-cl":
        model.to(memory_format=torch.channels_last)
        x = [t.contiguous(memory_format=torch.channels_last) for t in x]
    y = torch.randint(0, 7, (args.batch, args.size, args.size), device=device)
    loss_fn = build_loss("wce", n_classes=7, class_counts=[1] * 7).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=5e-5, momentum=0.99, weight_decay=1e-4)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times, sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="dsmn-s2,dmmn-ms,dmmn-m2s,dmmn-m3,unetpp-effb0")
    ap.add_argument("--modes", default="fp32,bf16,bf16-cl")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=256, help="input side, px")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()

    import torch

    from magnipath.device import amp_dtype, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    has_amp = amp_dtype(resolve_device(args.device), True) is not None
    for arch in args.archs.split(","):
        for mode in args.modes.split(","):
            if mode != "fp32" and not has_amp:
                continue
            times, n_params = step_times(arch, mode, args)
            med = statistics.median(times)
            emit({"bench": "training_step", "arch": arch, "mode": mode, "device": args.device,
                  "batch": args.batch, "size": args.size, "params": n_params,
                  "step_s": [round(t, 3) for t in times], "median_step_s": round(med, 3),
                  "samples_per_s": round(args.batch / med, 3)}, args.jsonl)


if __name__ == "__main__":
    main()
