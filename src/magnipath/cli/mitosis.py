"""Detect mitoses in tiles (Pearce): train from point labels, detect, evaluate.

Actions:
  train SLIDE...      tiles (64 or 256 px) labelled from mitosis points by the probability
                      map exp(-a d) > threshold; the small CNN with balanced sampling (~1/3
                      positive) and the negative feed; RGB, RGB + H + E or stain-normalised
  detect SLIDE        per-tile probabilities -> heat map (.npy + .json) and QuPath
                      detections of class Mitosis with a 'Mitosis probability' measurement
  evaluate SLIDE...   tile accuracy, precision, recall, F1 and point recall against points

Points: QuPath GeoJSON (default NAME.mitoses.geojson next to each slide, as written by
'magnipath synth'), or --project to read the point annotations of a QuPath project.
Coordinates are level-0 pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from magnipath._errors import MagnipathError

NAME = "mitosis"
HELP = "mitosis detection in tiles: train from points, detect (heat map, QuPath), evaluate"
ORDER = 71


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print a machine-readable JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars")


def _slide_mpp_arg(p: argparse.ArgumentParser) -> None:
    from magnipath.magnification import mpp_option

    p.add_argument("--slide-mpp", type=mpp_option, metavar="UM|estimate[:MODEL_DIR]",
                   help="level-0 µm/px of slides whose file gives none (0.25 = 40x), or "
                        "'estimate' / 'estimate:MODEL_DIR' to estimate it from their pixels "
                        "(recorded as an estimate in the summary)")


def _points_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--points", nargs="*", type=Path, metavar="GEOJSON",
                   help="mitosis points per slide, in slide order (default NAME.mitoses.geojson)")
    p.add_argument("--project", type=Path, metavar="QPPROJ",
                   help="read the points from this QuPath project (image = slide file name)")
    p.add_argument("--point-class", default="Mitosis",
                   help="class name of the points (default Mitosis)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train the tile classifier from mitosis points")
    t.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="training slides")
    t.add_argument("--out", type=Path, required=True, help="model folder to write")
    t.add_argument("--val", nargs="*", type=Path, default=[], metavar="SLIDE",
                   help="validation slides (their points next to them); picks the best epoch")
    _points_args(t)
    _slide_mpp_arg(t)
    g = t.add_argument_group("tiles and labels")
    g.add_argument("--tile", type=int, default=64, help="tile side, px (64 or 256; default 64)")
    g.add_argument("--mpp", type=float, help="tile resolution, µm/px (default level 0)")
    g.add_argument("--a", type=float, default=0.1,
                   help="decay of exp(-a d) per tile pixel (default 0.1)")
    g.add_argument("--threshold", type=float, default=0.5,
                   help="a tile is positive when the map exceeds this (0..1, default 0.5)")
    g.add_argument("--max-negative-ratio", type=float,
                   help="keep at most this many negative tiles per positive (count ratio)")
    m = t.add_argument_group("model and training")
    m.add_argument("--stain", choices=("rgb", "rgb+he", "normalise"), default="rgb",
                   help="inputs: RGB, RGB + Macenko H and E (6 channels), or normalised RGB")
    m.add_argument("--filters", default="128,64", help="channels per conv block (default 128,64)")
    m.add_argument("--affine", type=int, default=512, help="dense layer width (default 512)")
    m.add_argument("--loss", choices=("bce", "hinge", "rare_hinge"), default="bce",
                   help="binary cross-entropy, hinge, or rare hinge (positive loss x e^a)")
    m.add_argument("--rare-a", type=float, default=2.0, help="a of the rare hinge (default 2)")
    m.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    m.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    m.add_argument("--batch-size", type=int, default=32, help="tiles per step (default 32)")
    m.add_argument("--no-negative-feed", action="store_true",
                   help="balanced sampling every epoch instead of the negative feed")
    m.add_argument("--feed-sampling", choices=("stratified", "random"), default="stratified",
                   help="correct tiles added to the negative feed: a third of them positive "
                        "(default) or a plain random sample (the paper's literal rule)")
    m.add_argument("--feed-noise", type=float, default=3.0,
                   help="standard deviation of the negative feed's Gaussian noise, grey levels "
                        "(0-255 scale, default 3)")
    m.add_argument("--time-budget", type=float, metavar="SECONDS", help="wall-clock limit, s")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    m.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    _common(t)

    d = sub.add_parser("detect", help="mitosis probabilities over a slide or region")
    d.add_argument("slide", type=Path, metavar="SLIDE", help="slide or image file")
    d.add_argument("--model", type=Path, required=True, help="model folder from 'mitosis train'")
    d.add_argument("--out", type=Path, required=True,
                   help="QuPath GeoJSON of the detections to write")
    d.add_argument("--heatmap", type=Path, help="also write the heat map: FILE.npy (float32, "
                   "NaN = background) and FILE.json (origin and step, level-0 px)")
    d.add_argument("--region", metavar="X,Y,W,H", help="box in level-0 px (default whole slide)")
    d.add_argument("--threshold", type=float, default=0.5,
                   help="write tiles with probability above this (0..1, default 0.5)")
    d.add_argument("--as-points", action="store_true", help="tile centres instead of squares")
    _slide_mpp_arg(d)
    d.add_argument("--device", default="cpu", help="cpu, cuda, auto...")
    _common(d)

    e = sub.add_parser("evaluate", help="score a model against mitosis points")
    e.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="held-out slides")
    e.add_argument("--model", type=Path, required=True, help="model folder")
    _points_args(e)
    _slide_mpp_arg(e)
    e.add_argument("--threshold", type=float, default=0.5,
                   help="probability cut for a positive call (0..1, default 0.5)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, auto...")
    _common(e)


def _sources(slides: list[Path], args: argparse.Namespace, progress=None,
             record: dict | None = None) -> list:
    """The slides with their points and slide mpp (``record`` collects what was estimated)."""
    from magnipath.magnification import resolve_slide_mpp
    from magnipath.mitosis import MitosisSource, load_points
    from magnipath.synth import sidecar_paths

    pts = list(getattr(args, "points", None) or [])
    if pts and len(pts) != len(slides):
        raise MagnipathError(f"--points: {len(pts)} files for {len(slides)} slides; give one "
                             "GeoJSON per slide, in slide order")
    project = getattr(args, "project", None)
    out = []
    for i, s in enumerate(slides):
        if project is not None:
            from qupath_bridge.project import Project

            with Project(project, "r") as p:
                objs = p.read_objects(s.name, types=("annotation", "detection"))
            points = load_points(objs, point_class=args.point_class)
        else:
            path = pts[i] if pts else sidecar_paths(s)[2]
            if not path.is_file():
                raise MagnipathError(f"{s}: no mitosis points; expected {path} (give --points "
                                     "or --project)")
            points = load_points(path, point_class=getattr(args, "point_class", "Mitosis"))
        mpp, said = resolve_slide_mpp(getattr(args, "slide_mpp", None), s, progress)
        if record is not None and said:
            record[str(s)] = said
        out.append(MitosisSource(s, points, mpp=mpp))
    return out


def _region(text: str | None):
    if text is None:
        return None
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 4 or v[2] <= 0 or v[3] <= 0:
        raise MagnipathError(f"--region {text!r}: give X,Y,W,H in level-0 pixels")
    return tuple(v)


def run(args: argparse.Namespace, progress) -> dict:
    """Run one action; return its summary."""
    from magnipath._errors import SlideError

    try:
        return _run(args, progress)
    except SlideError as e:
        if getattr(args, "slide_mpp", None) is None and "suggest-mpp" in str(e):
            raise SlideError(f"{e} In 'magnipath mitosis' give it with --slide-mpp (--mpp "
                             "there is the tile resolution), or let it be estimated: "
                             "--slide-mpp estimate (or estimate:MODEL_DIR).") from e
        raise


def _run(args: argparse.Namespace, progress) -> dict:
    from magnipath import mitosis as mt

    if args.action == "train":
        out = Path(args.out)
        if out.exists() and not args.overwrite:
            raise MagnipathError(f"{out} exists; choose another folder or --overwrite")
        tc = mt.TileConfig(tile=args.tile, mpp=args.mpp, a=args.a, threshold=args.threshold,
                           max_negative_ratio=args.max_negative_ratio, seed=args.seed)
        said: dict = {}
        tiles = mt.make_tiles(_sources(args.slides, args, progress, said), tc,
                              progress=progress)
        val = mt.make_tiles(_sources(args.val, args, progress, said), tc,
                            progress=progress) if args.val else None
        try:
            filters = tuple(int(f) for f in args.filters.split(","))
        except ValueError:
            raise MagnipathError(f"--filters {args.filters!r}: give e.g. 128,64") from None
        cfg = mt.MitosisTrainConfig(
            stain=args.stain, filters=filters, affine=args.affine, loss=args.loss,
            rare_a=args.rare_a, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
            negative_feed=not args.no_negative_feed, noise_sigma=args.feed_noise,
            feed_positive_fraction=None if args.feed_sampling == "random" else 1.0 / 3.0,
            time_budget_s=args.time_budget,
            device=args.device, seed=args.seed)
        _, summary = mt.train(tiles, val, out, cfg, progress=progress)
        last = summary["history"][-1] if summary["history"] else {}
        res = {"model": str(out), "tiles": len(tiles), "positive_tiles": int(tiles.labels.sum()),
               "epochs": summary["epochs"], "last_epoch": last, "seconds": summary["seconds"]}
        return {**res, "slide_mpp": said} if said else res
    if args.action == "detect":
        from magnipath.magnification import resolve_slide_mpp

        slide_mpp, said = resolve_slide_mpp(args.slide_mpp, args.slide, progress)
        try:
            det = mt.detect(args.model, args.slide, region=_region(args.region),
                            device=args.device, slide_mpp=slide_mpp, progress=progress)
        except mt.MitosisError as e:
            if "mpp_estimate" in said:
                raise mt.MitosisError(f"{e} Here {said['mpp']:.4g} µm/px is {said['mpp_source']}"
                                      ", not read from the file.") from e
            raise
        source = {"slide_mpp": det.slide_mpp, "slide_mpp_source": det.slide_mpp_source}
        if "mpp_estimate" in said:  # opened with the estimate: say it is one
            source.update(slide_mpp_source=said["mpp_source"],
                          slide_mpp_estimate=said["mpp_estimate"])
        det.write_geojson(args.out, args.threshold, as_points=args.as_points)
        res = {"geojson": str(args.out), "tiles": len(det.probs),
               "detections": int((det.probs > args.threshold).sum()),
               "heatmap_shape": list(det.heatmap.shape), **source}
        if args.heatmap:
            res["heatmap"] = _write_heatmap(det, Path(args.heatmap), source)
        return res
    said = {}
    res = mt.evaluate(args.model, _sources(args.slides, args, progress, said),
                      threshold=args.threshold, device=args.device, progress=progress)
    return {**res, "slide_mpp": said} if said else res


def _write_heatmap(det, path: Path, slide_source: dict) -> str:
    import numpy as np

    from magnipath._io import atomic_path, atomic_write_text

    npy = path.with_suffix(".npy")
    with atomic_path(npy) as tmp:
        np.save(tmp, det.heatmap)
    atomic_write_text(path.with_suffix(".json"), json.dumps(
        {"origin_xy": list(det.origin), "step": det.step, "tile_size": det.tile_size,
         "mpp": det.mpp, "units": "level-0 pixels", "shape": list(det.heatmap.shape),
         **slide_source}))
    return str(npy)
