"""The end-to-end demo on built-in synthetic slides.

Makes training and test slides with ground truth, tiles the training slides
with DMMN context (20x/10x/5x-style concentric inputs, here at --magnification
and its halves), trains a small multi-magnification model on the CPU (a budget
of epochs; a time cap only as a safety net, reported when hit), runs it over
the held-out slide, evaluates it against the ground truth, and writes the
predicted TLS and carcinoma objects as QuPath GeoJSON (and into a QuPath project
where QuPath is installed). Prints the metrics and where everything is last;
the full JSON summary goes to OUT/summary.json (or --summary FILE).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "end-to-end pipeline on synthetic slides (synth, tile, train, infer, evaluate, QuPath)"
ORDER = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    from magnipath.demo import DemoConfig

    d = DemoConfig()
    p.add_argument("--out", type=Path, default=d.out, help=f"output folder (default {d.out})")
    p.add_argument("--size", type=int, default=d.size,
                   help=f"side of each synthetic slide, level-0 px (default {d.size})")
    p.add_argument("--n-train", type=int, default=d.n_train,
                   help=f"number of training slides (default {d.n_train})")
    p.add_argument("--magnification", type=float, default=d.magnification,
                   help=f"target magnification; context at 1/2 and 1/4 (default {d.magnification})")
    p.add_argument("--tile", type=int, default=d.tile,
                   help=f"target tile size, px at the target magnification (default {d.tile})")
    p.add_argument("--arch", default=d.arch, help=f"architecture (default {d.arch})")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"training budget in epochs (default {d.epochs})")
    p.add_argument("--train-seconds", type=float, default=d.train_seconds,
                   help=f"training time cap, s: a safety net that ends training early on a "
                        f"very slow machine, and the demo then says so (default "
                        f"{d.train_seconds:g})")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 when the time cap ended training early")
    p.add_argument("--no-amp", action="store_true",
                   help="float32 throughout (default: bfloat16/float16 mixed precision where "
                        "the CPU (AMX / AVX512-BF16) or CUDA GPU computes it natively)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default 0)")


STRICT_EXIT = 3
"""Exit code of ``--strict`` when the time cap ended training early."""


def run(args: argparse.Namespace, progress) -> dict:
    from magnipath.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=args.out, size=args.size, n_train=args.n_train,
                     magnification=args.magnification, tile=args.tile, arch=args.arch,
                     epochs=args.epochs, train_seconds=args.train_seconds,
                     amp=not args.no_amp, seed=args.seed)
    summary = run_demo(cfg, progress=progress)
    if args.summary is None:  # the full summary always lands next to the results
        args.summary = Path(args.out) / "summary.json"
    return summary


def human_lines(summary: dict, args: argparse.Namespace) -> list[str]:
    """The demo's result in a few lines (printed last)."""
    m, t = summary["metrics"], summary["timings_s"]
    stages = ", ".join(f"{k[:-2]} {v:.0f}" for k, v in t.items() if k != "total_s")
    lines = [f"MagniPath demo finished in {t['total_s']:.0f} s ({stages}); results in "
             f"{args.out}/",
             "IoU on the held-out slide: " + ", ".join(
                 f"{k} {v:.3f}" for k, v in m["iou"].items() if isinstance(v, float))
             + f"; mIoU {m['mean_iou']:.3f}"]
    counts = summary["objects"]["counts"]
    lines.append("objects: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "none")
                 + f" -> {summary['objects']['geojson']}")
    q = summary["qupath"]
    lines.append(f"QuPath project: {q['project']}" if q.get("written")
                 else f"QuPath project: not written ({q.get('reason')})")
    tr = summary["training"]
    if tr["stopped_by_time_cap"]:
        lines.append(tr["note"])
    else:
        lines.append(f"training: {tr['epochs_done']} of {tr['epochs']} epochs in "
                     f"{tr['train_s']:.0f} s (time cap {tr['train_seconds']:g} s not reached)")
    return lines


def exit_code(summary: dict, args: argparse.Namespace) -> int:
    """0, or :data:`STRICT_EXIT` with ``--strict`` when the time cap ended training."""
    return STRICT_EXIT if args.strict and summary["training"]["stopped_by_time_cap"] else 0
