"""Estimate the magnification of images that have no metadata (Otálora et al.).

Actions:
  estimate IMAGE...      magnification of PNG/JPEG/TIFF images of any size; by default the
                         physical estimate (no training: the size of small dark round nuclei,
                         lymphocytes of 5-8 µm, in pixels) with an interval, or "cannot
                         estimate"; --model adds a CNN fusion model, used only where it agrees
  suggest-mpp SLIDE...   estimated level-0 µm/px of slides whose metadata has none
  make-data SLIDE...     224 px patches at 5, 8, 10, 15, 20, 30, 40x from 40x slides by
                         downsampling, split by slide (or --synthetic N slides)
  train DATASET          the direct and the area regressors (ShallowNet or DenseNet-121)
  evaluate DATASET       Cohen's kappa, F1 and confusion matrices of direct, area, fusion
                         and baseline on held-out slides

Every answer is an estimate from image content and is labelled as one.
Magnification = 10 / mpp (40x = 0.25 µm/px). A checked suggest-mpp answer is passed on
with --mpp (magnipath infer SLIDE --mpp 0.5); 'magnipath infer ... --mpp estimate[:MODEL]'
and 'magnipath tile ... --mpp-override estimate[:MODEL]' estimate and use it themselves
for slides without mpp, and record that they did.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from magnipath._errors import MagnipathError
from magnipath.magnification._suggest import mpp_option, resolve_slide_mpp

__all__ = ["mpp_option", "resolve_slide_mpp"]  # moved to the core; kept importable here

NAME = "magnification"
HELP = "estimate the magnification of images without metadata; make data, train, evaluate"
ORDER = 70


def _amp_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--amp", action="store_true",
                   help=f"mixed-precision {what}: bfloat16 on CPUs with native bfloat16 "
                        "(AMX/AVX512-BF16) and recent GPUs, float16 on older GPUs; float32 "
                        "elsewhere (default off)")


def _tta_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-tta", action="store_true",
                   help="predict from each patch as it is, not averaged over its 8 rotations "
                        "and mirror images (8 times faster, a little less accurate)")


def _method_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=("physical", "baseline"), default="physical",
                   help="without --model: physical (default; nucleus sizes in µm, no "
                        "training) or baseline (Otsu mean nucleus area, synthetic calibration)")


def _common(p: argparse.ArgumentParser) -> None:
    # accepted after the action too; SUPPRESS keeps a value given before the action
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print a machine-readable JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("estimate", help="estimate the magnification of images")
    e.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="PNG, JPEG or TIFF images (any size)")
    e.add_argument("--model", type=Path, help="CNN model folder from 'magnification train', "
                   "combined with the physical estimate where they agree (default: none)")
    _method_flag(e)
    e.add_argument("--mode", choices=("auto", "center", "tiles"), default="auto",
                   help="centre 224 px crop, or tissue tiles of 224 px with a vote (auto: tiles "
                        "when the image holds two or more)")
    e.add_argument("--max-tiles", type=int, default=16, help="most tiles voting (count)")
    e.add_argument("--alpha", type=float, help="fusion weight of the area branch, 0..1 "
                   "(default: the model's, 0.2)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, auto...")
    _amp_flag(e, "prediction")
    _tta_flag(e)
    _common(e)

    s = sub.add_parser("suggest-mpp", help="estimate the µm/px of slides without metadata")
    s.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="whole-slide images")
    s.add_argument("--model", type=Path, help="CNN model folder, combined with the physical "
                   "estimate where they agree (default: none)")
    _method_flag(s)
    s.add_argument("--tiles", type=int, default=16, help="tissue tiles of 224 px to vote")
    s.add_argument("--device", default="cpu", help="cpu, cuda, auto...")
    _common(s)

    d = sub.add_parser("make-data", help="patches at 5..40x from 40x slides")
    d.add_argument("slides", nargs="*", type=Path, metavar="SLIDE",
                   help="40x slides (level 0 at 0.25 µm/px or finer)")
    d.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    d.add_argument("--nuclei", nargs="*", type=Path, metavar="GEOJSON",
                   help="nucleus outlines per slide (QuPath GeoJSON polygons, level-0 px), in "
                        "slide order; default: nuclei from the haematoxylin channel")
    d.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also make N synthetic 40x slides (count)")
    d.add_argument("--synthetic-size", type=int, default=4096,
                   help="side of each synthetic slide, level-0 px (default 4096)")
    d.add_argument("--synthetic-dir", type=Path,
                   help="folder for the synthetic slides (default OUT.slides)")
    d.add_argument("--magnifications", default="5,8,10,15,20,30,40",
                   help="comma-separated magnifications (x; default 5,8,10,15,20,30,40)")
    d.add_argument("--per-class", type=int, default=20,
                   help="patches per magnification per slide (count, default 20)")
    d.add_argument("--min-nuclei", type=int, default=3,
                   help="complete nuclei a patch needs (count, default 3)")
    d.add_argument("--ratios", default="60,20,20",
                   help="train,val,test shares of the slides (default 60,20,20)")
    d.add_argument("--mpp", type=float, help="level-0 µm/px for slides without metadata")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    d.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    _common(d)

    t = sub.add_parser("train", help="train the direct and area regressors")
    t.add_argument("dataset", type=Path, metavar="DATASET", help="folder from make-data")
    t.add_argument("--out", type=Path, required=True, help="model folder to write")
    t.add_argument("--arch", choices=("shallownet", "densenet121"), default="shallownet",
                   help="architecture (random initialisation; default shallownet)")
    t.add_argument("--widths", help="ShallowNet channels of its four blocks, e.g. 32,64,128,128 "
                   "(the default)")
    t.add_argument("--head", choices=("gap", "flatten"),
                   help="ShallowNet output layer on the averaged (default) or flattened map")
    t.add_argument("--no-refit-head", action="store_true",
                   help="keep the trained output layer (default: refit it by ridge regression "
                        "on eval-mode features of the training patches)")
    t.add_argument("--epochs", type=int, help="passes over the training patches (default 10)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4, the paper's)")
    t.add_argument("--batch-size", type=int, help="patches per step (default 16)")
    t.add_argument("--alpha", type=float, help="fusion weight stored in the model (default 0.2)")
    t.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="wall-clock limit for both regressors, s")
    t.add_argument("--max-steps-per-epoch", type=int, help="at most N steps per epoch")
    t.add_argument("--no-augment", action="store_true", help="no flips or 90° rotations")
    t.add_argument("--device", help="auto (default), cpu, cuda, mps")
    _amp_flag(t, "training")
    t.add_argument("--target-transform", choices=("linear", "log"),
                   help="regress target / scale (linear, default) or its logarithm (log; "
                        "evenly spaced classes)")
    t.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant (default) or cosine decay to 0 over the epochs or the "
                        "time budget")
    t.add_argument("--stain-augment", type=float, metavar="S",
                   help="random H-E-DAB stain jitter: OD scaled by U(1-S, 1+S) and shifted by "
                        "U(-S, S) (optical density units; default 0, off)")
    t.add_argument("--blur-augment", type=float, metavar="SIGMA",
                   help="random Gaussian blur of half the training patches, standard deviation "
                        "up to SIGMA pixels (default 0: off; 1.5 makes pixel sharpness useless "
                        "as a cue)")
    t.add_argument("--input", choices=("rgb", "hematoxylin"),
                   help="network input: RGB (default) or the haematoxylin optical density "
                        "(colour-independent)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    _common(t)

    v = sub.add_parser("evaluate", help="kappa, F1, confusion matrices on held-out slides")
    v.add_argument("dataset", type=Path, metavar="DATASET", help="folder from make-data")
    v.add_argument("--model", type=Path, help="model folder (default: baseline only)")
    v.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which slides to score (default test)")
    v.add_argument("--alpha", type=float, help="fusion weight (default: the model's)")
    v.add_argument("--device", default="cpu", help="cpu, cuda, auto...")
    _amp_flag(v, "prediction")
    _tta_flag(v)
    _common(v)


def _answer_line(r: dict) -> str:
    """One readable line: the estimate with its interval, or why there is none."""
    if r.get("mpp_estimate") is None:
        return f"cannot estimate: {r.get('cannot_estimate') or r.get('note', 'no estimate')}"
    line = (f"about {r['magnification']:g}x ({r['mpp_estimate']:.3g} µm/px, "
            f"{r['magnification_continuous']:.3g}x), an estimate by {r['method']}")
    iv = (r.get("physical") or {}).get("mpp_interval")
    if iv and r["method"] == "physical":
        line += f"; 95 % interval {iv[0]:.3g}-{iv[1]:.3g} µm/px"
    if r.get("disagreement"):
        line += f"; {r['disagreement']['note']}"
    return line


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MagnipathError(f"{what} {text!r}: give comma-separated numbers") from None


def run(args: argparse.Namespace, progress) -> dict:
    """Run one action; return its summary."""
    from magnipath import magnification as mg

    if args.action == "estimate":
        model = mg.load_model(args.model, device=args.device, amp=args.amp) \
            if args.model else None
        out = []
        for path in args.images:
            r = mg.estimate(path, model, method=args.method, mode=args.mode,
                            max_tiles=args.max_tiles,
                            alpha=args.alpha, tta=not args.no_tta, progress=progress)
            out.append({"image": str(path), "answer": _answer_line(r), **r})
        return {"estimates": out} if len(out) > 1 else out[0]
    if args.action == "suggest-mpp":
        model = mg.load_model(args.model, device=args.device) if args.model else None
        res = []
        for path in args.slides:
            mpp, details = mg.suggest_mpp(path, model, method=args.method, n_tiles=args.tiles,
                                          progress=progress)
            entry = {"slide": str(path), "answer": _answer_line(details), "mpp_estimate": mpp,
                     **details}
            if mpp is not None:
                entry["use"] = (f"an estimate: check it, then e.g. 'magnipath infer "
                                f"{shlex.quote(str(path))} --mpp {mpp:.4g} ...' (tile: "
                                f"--mpp-override {mpp:.4g})")
            res.append(entry)
        return {"slides": res} if len(res) > 1 else res[0]
    if args.action == "make-data":
        return _make_data(args, progress)
    if args.action == "train":
        kw = {}
        if args.widths:
            if args.arch != "shallownet":
                raise MagnipathError("--widths applies to --arch shallownet only")
            kw["widths"] = [int(v) for v in _floats(args.widths, "--widths")]
        if args.head:
            if args.arch != "shallownet":
                raise MagnipathError("--head applies to --arch shallownet only")
            kw["head"] = args.head
        cfg = mg.MagTrainConfig(arch=args.arch, arch_kwargs=kw).replace(
            epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, alpha=args.alpha,
            time_budget_s=args.time_budget, max_steps_per_epoch=args.max_steps_per_epoch,
            device=args.device, seed=args.seed, augment=False if args.no_augment else None,
            refit_head=False if args.no_refit_head else None, amp=args.amp or None,
            target_transform=args.target_transform, lr_schedule=args.lr_schedule,
            stain_augment=args.stain_augment, blur_augment=args.blur_augment,
            input=args.input)
        return mg.train(args.dataset, args.out, cfg, overwrite=args.overwrite,
                        progress=progress)
    return mg.evaluate(args.model, args.dataset, split=args.split, alpha=args.alpha,
                       device=args.device, amp=args.amp, tta=not args.no_tta,
                       progress=progress)


def _make_data(args: argparse.Namespace, progress) -> dict:
    from magnipath import magnification as mg

    nuclei = list(args.nuclei or [])
    if nuclei and len(nuclei) != len(args.slides):
        raise MagnipathError(f"--nuclei: {len(nuclei)} files for {len(args.slides)} slides; "
                             "give one nucleus GeoJSON per slide, in slide order")
    sources = [mg.MagSource(s, nuclei=nuclei[i] if nuclei else None, mpp=args.mpp)
               for i, s in enumerate(args.slides)]
    if args.synthetic:
        folder = args.synthetic_dir or Path(f"{args.out}.slides")
        sources += mg.synthetic_sources(folder, args.synthetic, size=args.synthetic_size,
                                        seed=args.seed, progress=progress)
    if not sources:
        raise MagnipathError("give 40x slides or --synthetic N")
    ratios = _floats(args.ratios, "--ratios")
    if len(ratios) != 3:
        raise MagnipathError(f"--ratios {args.ratios!r}: give three numbers train,val,test")
    cfg = mg.MagDataConfig(magnifications=tuple(_floats(args.magnifications,
                                                        "--magnifications")),
                           per_class=args.per_class, min_nuclei=args.min_nuclei,
                           ratios=(ratios[0], ratios[1], ratios[2]), seed=args.seed)
    return mg.make_dataset(sources, args.out, cfg, overwrite=args.overwrite, progress=progress)
