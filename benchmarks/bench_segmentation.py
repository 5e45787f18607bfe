#!/usr/bin/env python
"""Whole-slide segmentation benchmark: MagniPath's inference engine end to end.

Runs :func:`magnipath.infer.infer_slide` over SLIDE at ``--mpp`` (0.5 µm/px, 20x),
batch ``--batch-size`` (8), tissue-masked, stride = window (no overlap), with

* ``--arch dsmn-s2`` / ``dmmn-m3``: MagniPath's DMMN models (``--base`` channels,
  paper 32; 7 synthetic classes), seed-0 random weights, 256 px windows with the
  DMMN 20x/10x/5x context for dmmn-m3;
* ``--peer-unet``: the *same* U-Net as TIAToolbox's benchmark
  (``PlainUNet(3, 4, base=32)`` from ``shared/peers/tiatoolbox/unet_model.py``,
  loaded by path, constructed right after ``torch.manual_seed(0)`` as the peer
  does), inputs scaled to [0, 1] like the peer's ``infer_batch``.

Measured (one JSON line, ``_common.emit``):

``e2e_*``         read + infer + write: ``infer_slide`` wall time (model already
                  built; tissue mask, reads, forward, stitching, zarr writing,
                  pyramid), windows predicted per second of it, seconds per slide.
``model_only_*``  the same model on the *same batches* (the first
                  ``--model-batches`` batches of kept windows, read beforehand),
                  ``model(x)`` on ready float tensors under ``torch.inference_mode``,
                  2 warm-up batches; measured before and after the run, mean used.
``efficiency``    e2e windows/s ÷ model-only windows/s (1.0 = no overhead).
``e2e_forward_s`` time inside the engine's forward step (normalise + model + argmax).
``peak_rss_mb``   sampled during the run, and the process lifetime peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import PeakSampler, emit, peak_rss_mb, rss_mb

PEER_UNET = Path(__file__).resolve().parents[2] / "shared" / "peers" / "tiatoolbox" / \
    "unet_model.py"


def load_peer_unet(path: Path):
    """Import the peer's ``unet_model.py`` by path; its TIAToolbox base class is stubbed
    (only ``PlainUNet``, plain PyTorch, is used)."""
    import torch

    if "tiatoolbox" not in sys.modules:
        pkg = types.ModuleType("tiatoolbox")
        models = types.ModuleType("tiatoolbox.models")
        abc = types.ModuleType("tiatoolbox.models.models_abc")
        abc.ModelABC = torch.nn.Module
        sys.modules.update({"tiatoolbox": pkg, "tiatoolbox.models": models,
                            "tiatoolbox.models.models_abc": abc})
    spec = importlib.util.spec_from_file_location("peer_unet_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(args):
    """``(net, card, description)`` with seed-0 random weights."""
    import torch

    from magnipath.checkpoint import ModelCard
    from magnipath.classes import ClassMap
    from magnipath.geometry import TileGeometry
    from magnipath.synth import SYNTH_CLASSES

    if args.peer_unet:
        mod = load_peer_unet(Path(args.peer_unet_file))
        torch.manual_seed(0)
        unet = mod.TiaUNet(num_classes=4, base=32).net  # the peer's construction order

        class ListInput(torch.nn.Module):
            """MagniPath's calling convention (a list of inputs) around a plain U-Net."""

            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, inputs):
                return self.net(inputs[0])

        net = ListInput(unet)
        card = ModelCard(
            arch="peer-plain-unet", arch_kwargs={"base": 32},
            class_map=ClassMap.from_names([f"class_{i}" for i in range(4)]).to_dict(),
            geometry=TileGeometry.single(args.mpp, args.patch).to_dict(),
            normalisation={"scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                           "description": "x / 255, as the peer's infer_batch"})
        digest = float(sum(p.double().sum() for p in unet.state_dict().values()
                           if p.dtype.is_floating_point))
        return net, card, {"model": "PlainUNet(base=32, classes=4) [peer file]",
                           "weights_checksum": round(digest, 6)}
    from magnipath.models import build_model

    torch.manual_seed(0)
    geometry = (TileGeometry.dmmn(args.mpp, args.patch) if args.arch.startswith("dmmn")
                else TileGeometry.single(args.mpp, args.patch))
    net = build_model(args.arch, n_classes=SYNTH_CLASSES.n_classes, base=args.base,
                      n_inputs=geometry.n_inputs)
    card = ModelCard(arch=args.arch, arch_kwargs=dict(net.arch_kwargs),
                     class_map=SYNTH_CLASSES.to_dict(), geometry=geometry.to_dict())
    return net, card, {"model": f"{args.arch}(base={args.base}, classes=7)"}


def first_batches(slide_path, card, args) -> list:
    """The first ``--model-batches`` batches of kept windows, as the engine reads them."""
    import math

    import numpy as np
    import torch

    from magnipath.checkpoint import normalize_inputs
    from magnipath.infer import WindowReader, plan_windows
    from magnipath.slide import open_slide
    from magnipath.tissue import detect_tissue

    g = card.input_geometry
    with open_slide(slide_path) as s:
        d = g.target_mpp / s.mpp
        plan = plan_windows((math.ceil(s.height / d), math.ceil(s.width / d)), g.target_size,
                            g.target_size)
        reader = WindowReader(s, g, (0.0, 0.0), d, 1)
        keep = detect_tissue(s).fractions(reader.target_boxes(plan.windows)) > 0
        idx = np.flatnonzero(keep)[: args.batch_size * args.model_batches]
        imgs = [reader.read(int(r), int(c)) for r, c in plan.windows[idx]]
        reader.close()
    return [normalize_inputs(torch.from_numpy(np.stack(imgs[i:i + args.batch_size])),
                             card.normalisation)
            for i in range(0, len(imgs), args.batch_size)]


def model_only(net, batches, amp=None, warmup: int = 2) -> float:
    """Windows per second of ``net(x)`` over the prepared batches, under the engine's
    precision (``amp``: autocast dtype or None, channels-last tensors with it)."""
    import torch

    if amp is not None:
        net.to(memory_format=torch.channels_last)
        batches = [[x.contiguous(memory_format=torch.channels_last) for x in b]
                   for b in batches]
    with torch.inference_mode(), torch.autocast("cpu", dtype=amp or torch.float32,
                                                enabled=amp is not None):
        for x in batches[:warmup]:
            net(x)
        t0 = time.perf_counter()
        n = 0
        for x in batches:
            net(x)
            n += x[0].shape[0]
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slide")
    ap.add_argument("--arch", default="dsmn-s2", choices=["dsmn-s2", "dmmn-m3"])
    ap.add_argument("--peer-unet", action="store_true",
                    help="TIAToolbox benchmark's PlainUNet instead of --arch")
    ap.add_argument("--peer-unet-file", default=str(PEER_UNET))
    ap.add_argument("--base", type=int, default=32, help="DMMN channel width (paper 32)")
    ap.add_argument("--mpp", type=float, default=0.5, help="target µm/px (0.5 = 20x)")
    ap.add_argument("--patch", type=int, default=256, help="window side, target px")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="reader threads")
    ap.add_argument("--no-tissue-mask", action="store_true")
    ap.add_argument("--model-batches", type=int, default=10,
                    help="batches of the model-only measurement")
    ap.add_argument("--out", default=None, help="prediction folder (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the prediction store")
    ap.add_argument("--no-amp", action="store_true",
                    help="float32 (default: the engine's default, bf16 on AMX/AVX512-BF16 CPUs)")
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args()

    import torch

    from magnipath.device import amp_dtype
    from magnipath.infer import InferConfig, infer_slide, store_path

    rss0 = rss_mb()
    net, card, desc = build(args)
    net.eval()
    n_params = sum(p.numel() for p in net.parameters())
    batches = first_batches(args.slide, card, args)
    amp = amp_dtype(torch.device("cpu"), not args.no_amp)
    mo_before = model_only(net, batches, amp)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="magnipath-seg-"))
    cfg = InferConfig(batch_size=args.batch_size, device="cpu", workers=args.workers,
                      tissue_mask=not args.no_tissue_mask, overwrite=True, amp=not args.no_amp)
    store = store_path(out, args.slide)
    if store.exists():
        shutil.rmtree(store)
    rss1 = rss_mb()
    with PeakSampler() as ps:
        t0 = time.perf_counter()
        res = infer_slide(args.slide, (net, card), out, cfg)
        wall = time.perf_counter() - t0
    mo_after = model_only(net, batches, amp)
    mo = (mo_before + mo_after) / 2
    e2e = res.windows_run / wall
    t = res.timings
    record = {
        "bench": "segmentation", "engine": "magnipath", "slide": Path(args.slide).name,
        **desc, "model_params": n_params, "batch": args.batch_size, "patch": args.patch,
        "mpp": args.mpp, "n_inputs": card.input_geometry.n_inputs,
        "precision": "float32" if amp is None else str(amp).removeprefix("torch."),
        "tissue_mask": "none" if args.no_tissue_mask else "otsu (magnipath.tissue, 8 µm/px)",
        "workers": args.workers, "torch_threads": torch.get_num_threads(),
        "label_shape": list(res.out_shape), "n_windows_grid": res.n_windows,
        "n_windows_run": res.windows_run, "n_skipped": res.n_skipped,
        "e2e_wall_s": round(wall, 2), "e2e_windows_per_s": round(e2e, 3),
        "seconds_per_slide": round(wall, 1),
        "model_only_windows_per_s": round(mo, 3),
        "model_only_before_after": [round(mo_before, 3), round(mo_after, 3)],
        "model_only_windows": sum(x[0].shape[0] for x in batches),
        "efficiency": round(e2e / mo, 3),
        "e2e_forward_s": round(t["forward_s"], 2),
        "e2e_in_forward_frac": round(t["forward_s"] / wall, 3),
        "e2e_non_forward_s": round(wall - t["forward_s"], 2),
        "tissue_s": round(t.get("tissue_s", 0.0), 2), "pyramid_s": round(t["pyramid_s"], 2),
        "read_s_summed_over_threads": round(t["read_s_summed_over_threads"], 2),
        "write_s_background": round(t["write_s"], 2),
        "rss_start_mb": round(rss0, 1), "rss_before_run_mb": round(rss1, 1),
        "run_peak_rss_mb": round(ps.peak, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "store": str(res.store) if args.keep else None,
    }
    if not args.keep:
        shutil.rmtree(store, ignore_errors=True)
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    emit(record, args.jsonl)


if __name__ == "__main__":
    main()
