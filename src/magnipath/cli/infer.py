"""Run a trained model over whole slides and write the predicted objects.

For each slide, the label map (and optionally class probabilities) is written
chunk by chunk into OUT/<slide>.zarr at the model's target resolution; a re-run
with the same slide, model and --out resumes an interrupted run. With
--geojson the chosen classes are vectorised into OUT/<slide>.geojson (QuPath
GeoJSON, level-0 pixel coordinates). With --qupath-project the slides are the
project's images and the objects are written back into them (re-runs replace
MagniPath's earlier objects only).

With --cohort FOLDER|CSV (or --cohort --qupath-project P) the slides run as a
cohort on dask.distributed (docs/cohort.md): an embedded cluster sized to the
machine, or --scheduler ADDR; finished slides are skipped on a re-run, a bad
slide fails alone, and OUT/cohort.json + OUT/cohort.csv report every slide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magnipath._errors import MagnipathError, SlideError
from magnipath.magnification import mpp_option, resolve_slide_mpp

NAME = "infer"
HELP = "whole-slide inference with a trained model"
ORDER = 50


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("slides", nargs="*", type=Path, metavar="SLIDE",
                   help="whole-slide images (pyramidal TIFF/SVS/OME-TIFF; openslide formats)")
    p.add_argument("--model", required=True, type=Path,
                   help="model folder written by 'magnipath train' (or a .pt file in it)")
    p.add_argument("--out", type=Path, default=Path("predictions"),
                   help="output folder (default: ./predictions)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names to vectorise, e.g. TLS,Carcinoma "
                        "(default: every class but Background)")
    p.add_argument("--geojson", action="store_true",
                   help="write the objects as QuPath GeoJSON next to the label map")
    p.add_argument("--as", dest="object_type", choices=["annotations", "detections"],
                   default="annotations", help="QuPath object type of the predictions")
    p.add_argument("--min-area", type=float, default=0.0,
                   help="drop objects smaller than this area, µm² (default 0)")
    p.add_argument("--simplify", type=float, default=0.0,
                   help="simplify outlines with this tolerance, µm (default 0: exact pixel edges)")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:1...")
    p.add_argument("--no-amp", action="store_true",
                   help="float32 throughout: no mixed precision (bf16/fp16 on CUDA, bf16 on "
                        "CPUs with AMX or AVX512-BF16)")
    p.add_argument("--batch-size", type=_batch_size, default=8,
                   help="windows per batch (count, default 8), or 'auto': from the free GPU "
                        "memory on CUDA, 8 elsewhere")
    p.add_argument("--decode", choices=["cpu", "device", "auto"], default="cpu",
                   help="where JPEG tiles are decoded: cpu (default), device (batched on the "
                        "GPU with nvJPEG; other codecs fall back to cpu), auto (device on CUDA)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (GPU runs of many windows)")
    p.add_argument("--stride", type=int, default=None,
                   help="window step in target pixels at the model's resolution (default: the "
                        "window size, no overlap); overlapping windows are blended")
    p.add_argument("--no-tissue-mask", action="store_true",
                   help="predict every window, also on glass (slower)")
    p.add_argument("--glass-background", action="store_true",
                   help="after the model, label the pixels the tissue mask calls glass "
                        "Background (windows on the tissue edge are predicted whole)")
    p.add_argument("--min-tissue", type=float, default=0.0,
                   help="keep a window when the tissue fraction of its target exceeds this "
                        "(fraction 0-1, default 0: any tissue)")
    p.add_argument("--region", default=None, metavar="X,Y,W,H",
                   help="predict only this box, level-0 pixels (default: the whole slide)")
    p.add_argument("--probabilities", action="store_true",
                   help="also store per-class probabilities (uint8) in the zarr store")
    p.add_argument("--workers", type=int, default=None,
                   help="reader threads (count, default 2); with --cohort: dask worker "
                        "processes of the embedded cluster (default: sized to the machine)")
    p.add_argument("--normalise-stain", "--normalize-stain", dest="normalise_stain",
                   action="store_true",
                   help="map the slide's H&E stain to the model's training stain (Macenko, one "
                        "mapping per slide; needs a model trained with a stain reference)")
    p.add_argument("--mpp", type=mpp_option, default=None, metavar="UM|estimate[:MODEL_DIR]",
                   help="level-0 resolution in µm/px for slides without (or with wrong) "
                        "metadata; 'estimate' (or 'estimate:MODEL_DIR' with a magnification "
                        "model) estimates it from the pixels of slides whose file has none "
                        "(an estimate: recorded as such in the summary and the store)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output that holds another run's result")
    p.add_argument("--qupath-project", type=Path, default=None,
                   help="QuPath project (.qpproj or its folder): infer its images and write "
                        "the objects back into it")
    p.add_argument("--images", nargs="*", default=None,
                   help="with --qupath-project: names of the images to process (default all)")
    add_cohort_arguments(p)


def add_cohort_arguments(p: argparse.ArgumentParser, *, qupath: bool = True) -> None:
    """The cohort options (shared by infer, evaluate)."""
    g = p.add_argument_group("cohort (many slides on dask.distributed; docs/cohort.md)")
    g.add_argument("--cohort", nargs="?", const="", default=None, metavar="FOLDER|CSV",
                   help="run a cohort: a folder of slides (recursive) or a CSV manifest "
                        "'slide,mpp,group'" + ("; with --qupath-project give --cohort alone to "
                                               "run the project's images as a cohort"
                                               if qupath else ""))
    g.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of an existing dask scheduler, e.g. tcp://HOST:8786 (default: "
                        "$MAGNIPATH_SCHEDULER, else an embedded cluster on this machine)")
    g.add_argument("--gpus", default=None, metavar="all|0,1",
                   help="one worker per GPU (worker resource GPU=1); with --scheduler: tasks "
                        "that need a GPU ask for resource GPU=1")
    g.add_argument("--dashboard", action="store_true",
                   help="start the dask dashboard and print its link")


def _targets(args) -> list[tuple[Path, str | None]]:
    if args.qupath_project is None:
        if not args.slides:
            raise MagnipathError("give at least one SLIDE, or --qupath-project PROJECT")
        return [(s, None) for s in args.slides]
    from qupath_bridge.project import Project

    with Project(args.qupath_project, mode="r") as proj:
        images = proj.images
    wanted = set(args.images or [i.name for i in images])
    missing = wanted - {i.name for i in images}
    if missing:
        raise MagnipathError(f"{args.qupath_project}: no image named {sorted(missing)}; "
                             "'magnipath qupath list PROJECT' shows the names")
    out = []
    for info in images:
        if info.name in wanted:
            if info.path is None:
                raise MagnipathError(f"{args.qupath_project}: image {info.name!r} has no local "
                                     "file (moved?); fix its path in QuPath first")
            out.append((Path(info.path), info.name))
    return out


def _region(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise MagnipathError(f"--region {text!r}: give X,Y,W,H in level-0 pixels, "
                             "e.g. 0,0,4096,4096") from None
    return (x, y, w, h)


def cohort_progress(progress):
    """The CLI's progress callback, plus the dask dashboard link printed on stderr."""
    import sys

    def cb(ev) -> None:
        if ev.stage == "cohort/dashboard":
            print(f"magnipath: dask dashboard at {ev.info.get('link')}", file=sys.stderr)
            return
        progress(ev)

    return cb


def _cohort_slides(args) -> list:
    from magnipath.cohort import CohortError, collect

    if args.slides:
        raise CohortError("give either SLIDE files or --cohort FOLDER|CSV, not both")
    if args.qupath_project is not None:
        if args.cohort:
            raise CohortError("give --cohort alone (no FOLDER) with --qupath-project: the "
                              "project's images are the cohort")
        return collect(args.qupath_project, images=args.images, qupath=True)
    if args.images:
        raise CohortError("--images needs --qupath-project")
    if not args.cohort:
        raise CohortError("--cohort needs a FOLDER of slides or a CSV manifest "
                          "(slide,mpp,group), or --qupath-project PROJECT")
    return collect(args.cohort)


def _run_cohort(args: argparse.Namespace, progress) -> dict:
    from magnipath.cohort import infer_job, run_cohort

    slides = _cohort_slides(args)
    cfg = _infer_config(args)  # --workers counts dask workers here, not reader threads
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    job = infer_job(args.model, args.out, cfg, mpp=args.mpp, classes=classes,
                    min_area_um2=args.min_area, simplify_um=args.simplify,
                    object_type=args.object_type.rstrip("s"),
                    qupath_project=args.qupath_project)
    rep = run_cohort(slides, job, args.out, scheduler=args.scheduler, workers=args.workers,
                     gpus=args.gpus, dashboard=args.dashboard,
                     progress=cohort_progress(progress))
    return rep if args.json else short_report(rep)


def short_report(rep: dict) -> dict:
    """The cohort report for reading: one line per slide (cohort.json/csv have it all)."""
    lines = {r["name"]: r["status"] + (f" ({r['n_objects']} objects)" if "n_objects" in r
                                       else "") for r in rep["slides"]}
    return {**{k: v for k, v in rep.items() if k not in ("slides", "settings")},
            "report": str(Path(rep["out"]) / "cohort.csv"), "slides": lines}


def _batch_size(text: str) -> int | str:
    """``--batch-size``: a whole number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number or 'auto'") from None


def _infer_config(args: argparse.Namespace, **extra):
    """The :class:`~magnipath.infer.InferConfig` of the options (one slide or a cohort)."""
    from magnipath.infer import InferConfig

    return InferConfig(stride=args.stride, batch_size=args.batch_size, device=args.device,
                       amp=not args.no_amp, tissue_mask=not args.no_tissue_mask,
                       glass_background=args.glass_background,
                       min_tissue=args.min_tissue, region=_region(args.region),
                       probabilities=args.probabilities, overwrite=args.overwrite,
                       decode=args.decode, compile=args.compile,
                       normalise_stain=args.normalise_stain, **extra)


def run(args: argparse.Namespace, progress) -> dict:
    from magnipath.checkpoint import card_of, provenance_note
    from magnipath.infer import infer_slide, prediction_objects

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise MagnipathError(f"--out {args.out} is a file, not a folder: infer writes one "
                             "<slide>.zarr store (and .geojson) per slide into a folder; give a "
                             "folder that does not exist yet (it is created) or an existing one")
    if args.cohort is not None:
        return _run_cohort(args, progress)
    if args.workers is None:
        args.workers = 2
    cfg = _infer_config(args, workers=args.workers)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    object_type = args.object_type.rstrip("s")
    results = []
    for slide, image_name in _targets(args):
        mpp, estimated = resolve_slide_mpp(args.mpp, slide, progress)
        try:
            slide_meta = ({"slide_mpp": estimated["mpp"],
                           "slide_mpp_source": estimated["mpp_source"],
                           "slide_mpp_estimate": estimated["mpp_estimate"]}
                          if "mpp_estimate" in estimated else None)
            res = infer_slide(slide, args.model, args.out, cfg, mpp=mpp, slide_meta=slide_meta,
                              progress=progress)
        except SlideError as e:
            if args.mpp is None and "suggest-mpp" in str(e):  # the file has no mpp
                raise SlideError(f"{e} Or let infer estimate it and use it: --mpp estimate "
                                 "(or estimate:MODEL_DIR); the summary and the prediction "
                                 "store then record the mpp as estimated.") from e
            raise
        entry = {"slide": str(slide), "store": str(res.store), "label_shape": res.out_shape,
                 "target_mpp": res.target_mpp, "windows": res.n_windows,
                 "skipped_no_tissue": res.n_skipped, "resumed_chunks": res.n_resumed_chunks,
                 "windows_run": res.windows_run, "already_complete": res.already_complete,
                 "seconds": round(res.seconds, 2), "windows_per_s": round(res.windows_per_s, 2),
                 "device": res.device, **estimated}
        note = provenance_note(card_of(args.model), slide)
        if note:
            entry["provenance"] = note
        if args.geojson or args.qupath_project is not None:
            objs = prediction_objects(res.store, classes=classes, min_area_um2=args.min_area,
                                      simplify_um=args.simplify, object_type=object_type,
                                      progress=progress)
            entry["n_objects"] = len(objs)
            by_class: dict[str, int] = {}
            for o in objs:
                by_class[str(o.classification)] = by_class.get(str(o.classification), 0) + 1
            entry["objects_by_class"] = by_class
            if not objs:
                entry["note"] = ("no objects predicted for the chosen classes "
                                 f"({', '.join(classes) if classes else 'all but Background'})"
                                 + ("; the GeoJSON file is valid and empty" if args.geojson
                                    else ""))
            if args.geojson:
                from qupath_bridge.geojson import write_geojson

                gj = Path(args.out) / f"{Path(res.store).stem}.geojson"
                write_geojson(objs, gj)
                entry["geojson"] = str(gj)
            if image_name is not None:
                from qupath_bridge.project import Project

                with Project(args.qupath_project, mode="r+") as proj:
                    entry["qupath"] = proj.write_predictions(image_name, objs,
                                                             as_type=object_type)
        if res.stain_normalisation is not None:
            entry["stain_normalisation"] = res.stain_normalisation
        results.append(entry)
    return {"model": str(args.model), "out": str(args.out), "slides": results}
