#!/usr/bin/env python
"""The GPU benchmark: whole-slide inference, model-only throughput and training steps.

Run by ``benchmarks/gpu.sh`` on a machine with an NVIDIA GPU (``--cpu-smoke``:
the same steps at toy size on a CPU, to prove the script runs). One JSON line
per figure (stdout and ``--jsonl``); every line carries ``bench``, ``kind`` and
the device name.

Figures (``kind``):

``env``          GPU, driver, torch, CUDA, CPU count.
``infer``        ``infer_slide`` on a synthetic JPEG slide (``--sizes``, level-0 px at
                 0.25 µm/px, ~50 % tissue in an ellipse): arch, precision, batch
                 (32/128/auto), decode (cpu/device); wall time, windows/s, the engine's
                 stage times (read wait, collate, launch, retire wait, H2D copy and
                 forward from CUDA events, stitch, write, device decode), peak GPU
                 memory, NVML utilisation (mean and share of 50 ms samples >= 90 %),
                 model-only windows/s on the same batch shape and
                 ``efficiency`` = end-to-end / model-only.
``extrapolate``  seconds for a 100,000 px slide (same tissue share): windows scale
                 with area, from the largest slide's steady rate plus its fixed costs.
``train``        training steps of the five architectures (bf16 autocast on CUDA,
                 channels-last, AdamW): samples/s at paper width, peak memory.

A time budget (``--budget-s``) is checked before each run: runs that would start
after it are written as ``{"skipped": "budget"}`` lines, most important runs first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ARCHS = ("dsmn-s2", "dmmn-ms", "dmmn-m2s", "dmmn-m3", "unetpp-effb0")
T0 = time.perf_counter()
OUT: list = []


def emit(rec: dict, jsonl: str | None) -> None:
    rec = {"bench": "gpu", "t_s": round(time.perf_counter() - T0, 1), **rec}
    line = json.dumps(rec, default=str)
    print(line, flush=True)
    if jsonl:
        with open(jsonl, "a") as f:
            f.write(line + "\n")


# -- synthetic slides -----------------------------------------------------------------------
def _pool(size: int, workdir: Path) -> list[list]:
    """Tissue tiles (512 px) per pyramid level from a small ``magnipath synth`` slide."""
    import numpy as np

    from magnipath.slide import open_slide
    from magnipath.synth import SynthConfig, synthesize

    src = workdir / f"pool{size}.tif"
    if not src.exists():
        synthesize(src, SynthConfig(width=size, height=size, mpp=0.25, seed=7, density=2.0))
    pools = []
    with open_slide(src) as s:
        for lv in s.levels:
            h, w = lv.shape
            arr = s.read_level(lv.index, 0, 0, h, w)
            tiles = [arr[y:y + 512, x:x + 512] for y in range(0, h - 511, 512)
                     for x in range(0, w - 511, 512)]
            tiles = sorted(tiles, key=lambda t: float(t.mean()))  # darkest: tissue
            tiles = tiles[:max(1, len(tiles) // 2)]
            if tiles:
                pools.append([np.ascontiguousarray(t) for t in tiles])
    return pools


def _encode(tile) -> bytes:
    """The JPEG bytes tifffile writes for one 512 px RGB tile (quality 85)."""
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, tile, tile=(512, 512), compression="jpeg",
                     compressionargs={"level": 85}, photometric="rgb")
    buf.seek(0)
    with tifffile.TiffFile(buf) as t:
        p = t.pages[0]
        return buf.getvalue()[p.dataoffsets[0]:p.dataoffsets[0] + p.databytecounts[0]]


def mosaic_slide(path: Path, size: int, pools: list[list]) -> Path:
    """A ``size`` x ``size`` px pyramidal JPEG BigTIFF at 0.25 µm/px: tissue tiles (from
    ``pools``) inside a centred ellipse of ~50 % of the area, glass elsewhere. Tiles are
    encoded once and repeated, so a 32768 px slide takes seconds to write."""
    import numpy as np
    import tifffile

    if path.exists():
        return path
    glass = _encode(np.full((512, 512, 3), 242, np.uint8))
    enc = [[_encode(t) for t in pool[:24]] for pool in pools]
    levels = []
    h = size
    while True:
        levels.append(h)
        if h < 1024:
            break
        h //= 2
    ax = size * math.sqrt(0.5 / math.pi)  # ellipse (circle) of half the slide's area
    res = 1e4 / 0.25

    def tiles(level: int):
        n = math.ceil(levels[level] / 512)
        ds = size / levels[level]
        pool = enc[min(level, len(enc) - 1)]
        for ty in range(n):
            for tx in range(n):
                cy, cx = (ty + 0.5) * 512 * ds, (tx + 0.5) * 512 * ds
                inside = (cy - size / 2) ** 2 + (cx - size / 2) ** 2 <= ax * ax
                yield pool[(ty * 7 + tx * 13) % len(pool)] if inside else glass

    tmp = path.with_suffix(".part.tif")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for i, side in enumerate(levels):
            kw = dict(shape=(side, side, 3), dtype=np.uint8, tile=(512, 512),
                      compression="jpeg", photometric="rgb", subfiletype=0 if i == 0 else 1)
            if i == 0:
                kw.update(resolution=(res, res), resolutionunit="CENTIMETER")
            tif.write(tiles(i), **kw)
    tmp.rename(path)
    return path


# -- models ----------------------------------------------------------------------------------
def build(arch: str, base: int, patch: int):
    """``(net, card)``: seed-0 random weights at paper width (``base``), 7 classes."""
    import torch

    from magnipath.checkpoint import ModelCard
    from magnipath.geometry import TileGeometry
    from magnipath.models import build_model
    from magnipath.synth import SYNTH_CLASSES

    torch.manual_seed(0)
    kw = {} if arch.startswith("unetpp") else {"base": base}
    net = build_model(arch, n_classes=SYNTH_CLASSES.n_classes, **kw)
    geometry = (TileGeometry.dmmn(0.5, patch) if net.n_inputs > 1
                else TileGeometry.single(0.5, patch))
    card = ModelCard(arch=arch, arch_kwargs=dict(net.arch_kwargs),
                     class_map=SYNTH_CLASSES.to_dict(), geometry=geometry.to_dict())
    return net, card


class Nvml:
    """GPU utilisation sampled every 50 ms in a thread (nvidia-ml-py); absent: None."""

    def __init__(self, index: int) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv, self.h = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # noqa: BLE001 - no NVML: no utilisation figures
            self.nv = None

    def __enter__(self):
        if self.nv is not None:
            self.t = threading.Thread(target=self._run, daemon=True)
            self.t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(int(self.nv.nvmlDeviceGetUtilizationRates(self.h).gpu))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.nv is not None:
            self.t.join()

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_ge90_share": None}
        s = self.samples
        return {"gpu_util_mean": round(sum(s) / len(s), 1),
                "gpu_util_ge90_share": round(sum(v >= 90 for v in s) / len(s), 3),
                "gpu_util_samples": len(s)}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(net, card, device, amp, batch: int, reps: int) -> float:
    """Windows/s of normalise + forward + argmax on device-resident uint8 batches (the
    engine's per-batch device work without copies), after 3 warm-up batches."""
    import torch

    from magnipath.checkpoint import normalize_inputs

    g = card.input_geometry
    s = g.target_size
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(0, 256, (batch, g.n_inputs, s, s, 3), generator=gen,
                      dtype=torch.uint8).to(device)
    cl = amp is not None
    if cl:
        net.to(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp,
                                                    enabled=amp is not None):
            logits = net(normalize_inputs(x, card.normalisation, channels_last=cl))
            return torch.max(logits, dim=1).indices.to(torch.uint8)

    for _ in range(3):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    _sync(device)
    return batch * reps / (time.perf_counter() - t0)


def run_infer(slide: Path, arch: str, args, device, *, precision: str, batch, decode: str,
              workdir: Path, nvml_index: int | None, jsonl) -> dict:
    import shutil

    import torch

    from magnipath.device import amp_dtype
    from magnipath.infer import InferConfig, infer_slide

    net, card = build(arch, args.base, args.patch)
    net = net.to(device).eval()
    out = workdir / f"pred-{arch}-{precision}-{batch}-{decode}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = InferConfig(batch_size=batch, device=str(device), amp=precision == "bf16",
                      decode=decode, workers=args.workers, overwrite=True,
                      compile=args.compile)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    nv = Nvml(nvml_index) if nvml_index is not None else None
    t0 = time.perf_counter()
    if nv is not None:
        with nv:
            res = infer_slide(slide, (net, card), out, cfg)
    else:
        res = infer_slide(slide, (net, card), out, cfg)
    wall = time.perf_counter() - t0
    t = res.timings
    amp = amp_dtype(device, precision == "bf16")
    mo = model_only(net, card, device, amp, t["batch_size"], args.model_reps)
    e2e = res.windows_run / wall if wall > 0 else 0.0
    run_s = t.get("run_s", wall)
    rec = {"kind": "infer", "arch": arch, "base": args.base, "slide_px": args.size_of[slide],
           "precision": precision if amp is not None else "float32",
           "batch": t["batch_size"], "batch_asked": batch, "decode": t.get("decode", "cpu"),
           "windows_run": res.windows_run, "windows_grid": res.n_windows,
           "wall_s": round(wall, 3), "e2e_windows_per_s": round(e2e, 2),
           "run_windows_per_s": round(res.windows_run / run_s, 2) if run_s else None,
           "model_only_windows_per_s": round(mo, 2),
           "efficiency": round(e2e / mo, 3) if mo else None,
           "efficiency_engine_only": round(res.windows_run / run_s / mo, 3) if run_s else None,
           "breakdown_s": {k: round(float(t[k]), 3) for k in (
               "setup_s", "tissue_s", "run_s", "pyramid_s", "read_wait_s", "collate_s",
               "launch_s", "retire_wait_s", "copy_gpu_s", "forward_gpu_s", "forward_s",
               "stitch_s", "write_s", "read_s_summed_over_threads", "decode_s",
               "assemble_s") if k in t}}
    if device.type == "cuda":
        rec["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if nv is not None:
        rec.update(nv.summary())
    shutil.rmtree(out, ignore_errors=True)
    emit(rec, jsonl)
    return rec


def train_throughput(arch: str, args, device, jsonl) -> None:
    import torch

    from magnipath.device import amp_dtype, configure_for_training

    configure_for_training(device)
    net, card = build(arch, args.base, args.patch)
    g = card.input_geometry
    net = net.to(device).train()
    amp = amp_dtype(device, True) if device.type == "cuda" else None
    cl = device.type == "cuda"
    if cl:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    b, s = args.train_batch, g.target_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((b, g.n_inputs, 3, s, s), generator=gen).to(device)
    y = torch.randint(0, card.n_classes, (b, s, s), generator=gen).to(device)
    fmt = torch.channels_last if cl else torch.contiguous_format
    inputs = [x[:, k].contiguous(memory_format=fmt) for k in range(g.n_inputs)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = torch.nn.functional.cross_entropy(net(inputs).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.train_warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        loss = step()
    _sync(device)
    dt = time.perf_counter() - t0
    rec = {"kind": "train", "arch": arch, "base": args.base if not arch.startswith("unetpp")
           else None, "batch": b, "patch": s, "n_inputs": g.n_inputs,
           "precision": "float32" if amp is None else str(amp).removeprefix("torch."),
           "channels_last": cl, "steps": args.train_steps,
           "samples_per_s": round(b * args.train_steps / dt, 2),
           "step_ms": round(1e3 * dt / args.train_steps, 2),
           "loss_finite": bool(torch.isfinite(loss).item())}
    if device.type == "cuda":
        rec["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    emit(rec, jsonl)


def env_record(device) -> dict:
    import platform

    import torch

    rec = {"kind": "env", "device": str(device), "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(),
           "cpus": os.cpu_count(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime())}
    try:
        import torchvision

        rec["torchvision"] = torchvision.__version__
    except ImportError:
        rec["torchvision"] = None
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        rec.update(gpu=p.name, gpu_mem_gb=round(p.total_memory / 2**30, 1),
                   sms=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
    else:
        rec["cpu"] = platform.processor() or platform.machine()
        try:
            rec["loadavg"] = os.getloadavg()
        except OSError:
            pass
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="toy sizes on the CPU: proves the script runs (no figures of worth)")
    ap.add_argument("--sizes", default="16384,32768", help="slide sides, level-0 px")
    ap.add_argument("--base", type=int, default=32, help="DMMN width (paper 32)")
    ap.add_argument("--patch", type=int, default=256, help="window side, target px")
    ap.add_argument("--workers", type=int, default=8, help="reader threads")
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="no run starts after this many seconds")
    ap.add_argument("--model-reps", type=int, default=10)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--train-warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile in inference runs")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()

    import torch

    if args.cpu_smoke:
        device = torch.device("cpu")
        args.sizes, args.base, args.patch, args.workers = "1024", 4, 64, 1
        args.model_reps, args.train_batch, args.train_steps, args.train_warmup = 2, 2, 1, 1
        batches, pool_size = (4, "auto"), 1024
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_gpu.py: no CUDA GPU here; use --cpu-smoke on a CPU")
        device = torch.device("cuda")
        batches, pool_size = (32, 128, "auto"), 4096
    nvml_index = (device.index or 0) if device.type == "cuda" else None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="magnipath-gpu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    emit(env_record(device), args.jsonl)

    t = time.perf_counter()
    pools = _pool(pool_size, workdir)
    sizes = [int(v) for v in args.sizes.split(",")]
    slides = {s: mosaic_slide(workdir / f"mosaic{s}.tif", s, pools) for s in sizes}
    args.size_of = {p: s for s, p in slides.items()}
    emit({"kind": "slides", "sizes": sizes, "seconds": round(time.perf_counter() - t, 1)},
         args.jsonl)

    small, big = slides[sizes[0]], slides[sizes[-1]]
    gpu_dec = "device"
    # most important first: the goal run, then the matrix around it
    plan = [(small, "dmmn-m3", "bf16", "auto", gpu_dec),
            (small, "dmmn-m3", "bf16", "auto", "cpu"),
            (big, "dmmn-m3", "bf16", "auto", gpu_dec)]
    plan += [(small, "dmmn-m3", "bf16", b, gpu_dec) for b in batches if b != "auto"]
    plan += [(small, "dmmn-m3", "fp32", "auto", gpu_dec)]
    plan += [(small, a, p, "auto", gpu_dec) for a in ("dsmn-s2", "unetpp-effb0")
             for p in ("bf16", "fp32")]
    plan += [(big, "dmmn-m3", "fp32", "auto", gpu_dec)]
    train_reserve = 45.0 if device.type == "cuda" else 0.0
    big_rec = None
    for slide, arch, prec, batch, dec in plan:
        if time.perf_counter() - T0 > args.budget_s - train_reserve:
            emit({"kind": "infer", "arch": arch, "precision": prec, "batch_asked": batch,
                  "decode": dec, "slide_px": args.size_of[slide], "skipped": "budget"},
                 args.jsonl)
            continue
        try:
            rec = run_infer(slide, arch, args, device, precision=prec, batch=batch,
                            decode=dec, workdir=workdir, nvml_index=nvml_index,
                            jsonl=args.jsonl)
        except Exception as e:  # noqa: BLE001 - one failed run must not end the benchmark
            emit({"kind": "infer", "arch": arch, "precision": prec, "batch_asked": batch,
                  "decode": dec, "error": f"{type(e).__name__}: {e}"}, args.jsonl)
            continue
        if slide == big and arch == "dmmn-m3" and prec == "bf16" and big_rec is None:
            big_rec = rec
    if big_rec is not None:
        b = big_rec["breakdown_s"]
        fixed = b.get("setup_s", 0) + b.get("tissue_s", 0) + b.get("pyramid_s", 0)
        scale = (100_000 / big_rec["slide_px"]) ** 2
        rate = big_rec["run_windows_per_s"] or 0
        windows = big_rec["windows_run"] * scale
        emit({"kind": "extrapolate", "arch": "dmmn-m3", "precision": "bf16",
              "from_slide_px": big_rec["slide_px"], "slide_px": 100_000,
              "windows": round(windows), "run_s": round(windows / rate, 1) if rate else None,
              "fixed_s_scaled": round(fixed * scale, 1),
              "seconds_per_slide": round(windows / rate + fixed * scale, 1) if rate else None,
              "note": "windows and fixed costs (tissue mask, pyramid) scaled by area; "
                      "engine rate of the largest slide"}, args.jsonl)
    for arch in ARCHS:
        try:
            train_throughput(arch, args, device, args.jsonl)
        except Exception as e:  # noqa: BLE001
            emit({"kind": "train", "arch": arch, "error": f"{type(e).__name__}: {e}"},
                 args.jsonl)
    emit({"kind": "done", "seconds": round(time.perf_counter() - T0, 1)}, args.jsonl)


if __name__ == "__main__":
    main()
