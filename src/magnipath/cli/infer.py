"""Run a trained model over whole slides and write the predicted objects.

For each slide, the label map (and optionally class probabilities) is written
chunk by chunk into OUT/<slide>.zarr at the model's target resolution; a re-run
with the same slide, model and --out resumes an interrupted run. With
--geojson the chosen classes are vectorised into OUT/<slide>.geojson (QuPath
GeoJSON, level-0 pixel coordinates). With --qupath-project the slides are the
project's images and the objects are written back into them (re-runs replace
MagniPath's earlier objects only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magnipath._errors import MagnipathError, SlideError
from magnipath.cli.magnification import mpp_option, resolve_slide_mpp

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
    p.add_argument("--batch-size", type=int, default=8,
                   help="windows per batch (count, default 8)")
    p.add_argument("--stride", type=int, default=None,
                   help="window step in target pixels at the model's resolution (default: the "
                        "window size, no overlap); overlapping windows are blended")
    p.add_argument("--no-tissue-mask", action="store_true",
                   help="predict every window, also on glass (slower)")
    p.add_argument("--min-tissue", type=float, default=0.0,
                   help="keep a window when the tissue fraction of its target exceeds this "
                        "(fraction 0-1, default 0: any tissue)")
    p.add_argument("--region", default=None, metavar="X,Y,W,H",
                   help="predict only this box, level-0 pixels (default: the whole slide)")
    p.add_argument("--probabilities", action="store_true",
                   help="also store per-class probabilities (uint8) in the zarr store")
    p.add_argument("--workers", type=int, default=2, help="reader threads (count, default 2)")
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


def run(args: argparse.Namespace, progress) -> dict:
    from magnipath.infer import InferConfig, infer_slide, prediction_objects

    cfg = InferConfig(stride=args.stride, batch_size=args.batch_size, device=args.device,
                      amp=not args.no_amp, tissue_mask=not args.no_tissue_mask,
                      min_tissue=args.min_tissue, region=_region(args.region),
                      probabilities=args.probabilities, workers=args.workers,
                      overwrite=args.overwrite)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise MagnipathError(f"--out {args.out} is a file, not a folder: infer writes one "
                             "<slide>.zarr store (and .geojson) per slide into a folder; give a "
                             "folder that does not exist yet (it is created) or an existing one")
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
        results.append(entry)
    return {"model": str(args.model), "out": str(args.out), "slides": results}
