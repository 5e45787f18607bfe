"""Cut annotated whole-slide images into a training tile dataset.

A grid of target tiles at one magnification covers every slide; tiles with
too little tissue (or labels, or without a required class) are dropped; each
kept tile stores its image (plus concentric context inputs with --dmmn or
--context), its label (QuPath annotation polygons rasterised through the class
map; unannotated pixels = ignore index 255) and, with point annotations, a
probability map exp(-a d). Splits are assigned by patient/group.

Annotations: --annotations pairs files with the slides by order (one per
slide). Without it, NAME.geojson next to NAME.tif (same folder, same name
without the extension) is used when it exists; slides without annotations get
all-ignore labels. --points works the same way but is never looked up
automatically.

Coordinates are level-0 pixels; tile sizes and strides are target pixels;
magnification = 10 / mpp (20x = 0.5 µm/px). The dataset folder is written
under a temporary name and renamed at the end: on error nothing is left.

With --cohort FOLDER|CSV (a CSV manifest may give each slide's mpp and group)
or --cohort --qupath-project P, each slide is cut into its own shard on dask
workers and the shards are merged into DATASET; the class map and the
patient-wise split are decided over the whole cohort first (docs/cohort.md).
"""

from __future__ import annotations

import argparse
import csv
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from magnipath._errors import SlideError, TilingError
from magnipath.magnification import mpp_option, resolve_slide_mpp
from magnipath.progress import ProgressCallback

if TYPE_CHECKING:
    from magnipath.tiling import TilingConfig

NAME = "tile"
HELP = "cut annotated slides into a tile dataset (zarr + manifest)"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("slides", nargs="*", metavar="SLIDE",
                   help="whole-slide images to tile (or --qupath-project)")
    p.add_argument("--qupath-project", metavar="PROJECT", default=None,
                   help="QuPath project (.qpproj or its folder) as the source: its images are "
                        "the slides and their annotations the labels (needs QuPath; "
                        "PAQUO_QUPATH_DIR)")
    p.add_argument("--images", nargs="+", metavar="NAME", default=None,
                   help="with --qupath-project: tile only these images (default all)")
    p.add_argument("--out", required=True, metavar="DATASET",
                   help="dataset folder to write (an existing dataset there is replaced)")
    p.add_argument("--annotations", nargs="+", metavar="GEOJSON",
                   help="QuPath GeoJSON per slide, in the order of the slides (coordinates in "
                        "level-0 pixels); default NAME.geojson next to each slide")
    p.add_argument("--points", nargs="+", metavar="GEOJSON",
                   help="QuPath GeoJSON of point annotations (e.g. mitoses) per slide, in the "
                        "order of the slides")
    p.add_argument("--classes", metavar="MAP",
                   help="class map 'Stroma=1,Carcinoma=2' (name=label index), 'Stroma,Carcinoma' "
                        "(indices from 0) or a classes.json file; default: the annotation classes "
                        "sorted by name, indices from 0")
    res = p.add_mutually_exclusive_group()
    res.add_argument("--magnification", type=float, metavar="X",
                     help="target magnification, e.g. 20 for 20x (= 0.5 µm/px); default 20")
    res.add_argument("--mpp", type=float, metavar="UM",
                     help="target resolution in µm per pixel (instead of --magnification)")
    p.add_argument("--size", type=int, default=256, metavar="PX",
                   help="target tile side in target pixels (default 256)")
    st = p.add_mutually_exclusive_group()
    st.add_argument("--overlap", type=float, default=0.0, metavar="FRAC",
                    help="fraction of the tile side shared by neighbours, in [0, 1) (0.5 = the "
                         "TLS paper's 50%%; default 0)")
    st.add_argument("--stride", type=int, metavar="PX",
                    help="step between tiles in target pixels (instead of --overlap)")
    ctx = p.add_mutually_exclusive_group()
    ctx.add_argument("--dmmn", action="store_true",
                     help="DMMN context stack: target + the centre 2x and 4x fields of view seen "
                          "at 1/2 and 1/4 of the target magnification, all --size px "
                          "(20x: 256 px at 20x + 512 px at 20x seen at 10x + 1024 px seen at 5x)")
    ctx.add_argument("--context", metavar="X,X",
                     help="context magnifications, e.g. '10,5': one --size px input per "
                          "magnification, concentric with the target")
    p.add_argument("--min-tissue", type=float, default=0.05, metavar="FRAC",
                   help="keep tiles whose tissue fraction is >= FRAC (0-1; default 0.05)")
    p.add_argument("--glass-unlabelled", action="store_true",
                   help="leave the pixels the tissue mask calls glass unlabelled, for models "
                        "run with 'infer --glass-background' (the mask decides what is glass)")
    p.add_argument("--min-labelled", type=float, default=0.0, metavar="FRAC",
                   help="keep tiles whose labelled fraction is > FRAC (0-1; DMMN: 0.01; "
                        "default 0 = no filter)")
    p.add_argument("--require-class", action="append", default=[], metavar="NAME",
                   help="keep only tiles containing at least one pixel of this class "
                        "(repeatable: any of them)")
    p.add_argument("--allow-upsample", action="store_true",
                   help="allow a target magnification above the scan's (otherwise an error)")
    p.add_argument("--point-class", metavar="NAME",
                   help="class of point annotations turned into probability maps (e.g. Mitosis)")
    p.add_argument("--point-a", type=float, default=0.1, metavar="PER_PX",
                   help="decay a of the point map exp(-a d), d in target pixels (default 0.1)")
    p.add_argument("--split", default="70,15,15", metavar="TR,VA,TE",
                   help="train,val,test shares of the groups (patients), e.g. 70,15,15")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (integer)")
    p.add_argument("--group", action="append", default=[], metavar="SLIDE=GROUP",
                   help="patient/group of a slide (SLIDE = file name without extension); "
                        "repeatable; default group = slide name")
    p.add_argument("--groups", metavar="CSV",
                   help="CSV file with columns slide,group (slide = file name without extension)")
    p.add_argument("--mpp-override", type=mpp_option, metavar="UM|estimate[:MODEL_DIR]",
                   help="level-0 resolution of the slides in µm per pixel, when the files lack "
                        "it or it is wrong; 'estimate' (or 'estimate:MODEL_DIR') estimates it "
                        "from the pixels of slides whose file has none (an estimate: listed "
                        "as such in the summary)")
    p.add_argument("--tissue-mpp", type=float, default=8.0, metavar="UM",
                   help="resolution of the tissue mask in µm per pixel (default 8)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads reading tiles (default 2); with --cohort: dask worker "
                        "processes of the embedded cluster (default: sized to the machine)")
    from magnipath.cli.infer import add_cohort_arguments

    add_cohort_arguments(p)


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise TilingError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _read_groups(args: argparse.Namespace) -> dict[str, str]:
    groups: dict[str, str] = {}
    if args.groups:
        path = Path(args.groups)
        try:
            rows = list(csv.reader(path.read_text().splitlines()))
        except OSError as e:
            raise TilingError(f"cannot read the groups file {path}: {e}") from e
        for i, row in enumerate(rows):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise TilingError(f"{path}: line {i + 1} must be 'slide,group', got {row}")
            if i == 0 and [c.strip().lower() for c in row[:2]] == ["slide", "group"]:
                continue
            groups[row[0].strip()] = row[1].strip()
    for item in args.group:
        slide, sep, group = item.partition("=")
        if not sep or not slide or not group:
            raise TilingError(f"--group {item!r} must be SLIDE=GROUP")
        groups[slide] = group
    return groups


def _project_sources(args: argparse.Namespace) -> list:
    """Slides and annotations of a QuPath project's images (read-only access)."""
    from magnipath.tiling import SlideSource
    from qupath_bridge.project import Project

    if args.slides or args.annotations:
        raise TilingError("give either SLIDE files (with --annotations) or --qupath-project, "
                          "not both")
    groups = _read_groups(args)
    out = []
    with Project(args.qupath_project, mode="r") as proj:
        images = proj.images
        wanted = set(args.images or [i.name for i in images])
        missing = sorted(wanted - {i.name for i in images})
        if missing:
            raise TilingError(f"{args.qupath_project}: no image named {missing}; "
                              "'magnipath qupath list PROJECT' shows the names")
        for info in images:
            if info.name not in wanted:
                continue
            if info.path is None or not Path(info.path).is_file():
                raise TilingError(f"{args.qupath_project}: the file of image {info.name!r} "
                                  f"({info.uri}) is missing; fix its path in QuPath first")
            objs = proj.read_objects(info.name, include_predictions=False)
            out.append(SlideSource(path=Path(info.path), annotations=objs, slide_id=info.name,
                                   group=groups.get(info.name), mpp=args.mpp_override or info.mpp,
                                   mpp_source="override" if args.mpp_override else "qupath"))
    return out


def _sources(args: argparse.Namespace) -> list:
    from magnipath.tiling import SlideSource, slide_stem

    if args.qupath_project:
        return _project_sources(args)
    if not args.slides:
        raise TilingError("give at least one SLIDE, or --qupath-project PROJECT")
    slides = [Path(s) for s in args.slides]
    for name in ("annotations", "points"):
        given = getattr(args, name)
        if given is not None and len(given) != len(slides):
            raise TilingError(f"--{name} got {len(given)} files for {len(slides)} slides; give "
                              "one per slide, in the order of the slides")
    groups = _read_groups(args)
    known = {slide_stem(s) for s in slides} | {s.name for s in slides} | {str(s) for s in slides}
    unknown = sorted(set(groups) - known)
    if unknown:
        raise TilingError(f"groups given for unknown slides {unknown}; use the slide file name "
                          "without its extension")
    out = []
    for i, s in enumerate(slides):
        if args.annotations is not None:
            ann: Path | None = Path(args.annotations[i])
        else:
            cand = s.with_name(slide_stem(s) + ".geojson")
            ann = cand if cand.is_file() else None
        group = groups.get(str(s)) or groups.get(s.name) or groups.get(slide_stem(s))
        out.append(SlideSource(path=s, annotations=ann,
                               points=Path(args.points[i]) if args.points else None,
                               group=group, mpp=args.mpp_override))
    return out


def _config(args: argparse.Namespace) -> TilingConfig:
    from magnipath.geometry import TileGeometry
    from magnipath.tiling import TilingConfig
    from magnipath.units import resolve_mpp

    try:
        mpp = (resolve_mpp(mpp=args.mpp) if args.mpp is not None
               else resolve_mpp(magnification=args.magnification or 20.0))
    except ValueError as e:
        raise TilingError(f"--magnification/--mpp: {e}") from None
    if args.size < 1:
        raise TilingError(f"--size must be a positive number of pixels, got {args.size}")
    if args.dmmn:
        geometry = TileGeometry.dmmn(mpp=mpp, size=args.size)
    elif args.context:
        mags = _floats(args.context, "--context")
        if not mags or any(m <= 0 for m in mags):
            raise TilingError(f"--context must list positive magnifications, got {args.context}")
        geometry = TileGeometry.with_context(mpp, args.size, [10.0 / m for m in mags])
    else:
        geometry = TileGeometry.single(mpp, args.size)
    split = _floats(args.split, "--split")
    if len(split) != 3:
        raise TilingError(f"--split needs three numbers train,val,test, got {args.split!r}")
    return TilingConfig(
        geometry=geometry, stride=args.stride, overlap=args.overlap,
        min_tissue=args.min_tissue, min_labelled=args.min_labelled,
        glass_unlabelled=args.glass_unlabelled,
        require_classes=tuple(args.require_class), allow_upsample=args.allow_upsample,
        tissue_mpp=args.tissue_mpp, point_class=args.point_class, point_a=args.point_a,
        split=tuple(split), seed=args.seed, workers=args.workers)  # type: ignore[arg-type]


def _run_cohort(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.classes import ClassMap
    from magnipath.cli.infer import cohort_progress
    from magnipath.cohort import CohortError, collect, tile_cohort

    if args.gpus:
        raise CohortError("tile --cohort runs on CPU workers; leave out --gpus")
    if not isinstance(args.mpp_override, float | None):
        raise CohortError("tile --cohort: --mpp-override estimate is not available for cohorts "
                          "yet; give the mpp per slide in a CSV manifest (slide,mpp,group)")
    workers, args.workers = args.workers, 2
    config = _config(args)
    if args.qupath_project:
        if args.cohort:
            raise CohortError("give --cohort alone (no FOLDER) with --qupath-project: the "
                              "project's images are the cohort")
        sources = _project_sources(args)
    else:
        if args.slides:
            raise CohortError("give either SLIDE files or --cohort FOLDER|CSV, not both")
        if not args.cohort:
            raise CohortError("--cohort needs a FOLDER of slides or a CSV manifest "
                              "(slide,mpp,group), or --qupath-project PROJECT")
        cohort = collect(args.cohort)
        args.slides = [str(c.path) for c in cohort]
        sources = [replace(s, group=s.group or c.group, mpp=s.mpp or c.mpp,
                           mpp_source=None if s.mpp else c.mpp_source)
                   for s, c in zip(_sources(args), cohort, strict=True)]
    class_map = ClassMap.parse(args.classes) if args.classes else None
    return tile_cohort(sources, args.out, config=config, class_map=class_map,
                       scheduler=args.scheduler, workers=workers, dashboard=args.dashboard,
                       progress=cohort_progress(progress))


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from magnipath.classes import ClassMap
    from magnipath.tiling import TilingWarning, make_dataset

    if args.cohort is not None:
        return _run_cohort(args, progress)
    if args.workers is None:
        args.workers = 2
    config = _config(args)
    request = args.mpp_override if not isinstance(args.mpp_override, float | None) else None
    if request is not None:  # --mpp-override estimate[:MODEL_DIR]: sources without, then each
        args.mpp_override = None
        try:
            sources = _sources(args)
        finally:
            args.mpp_override = request
    else:
        sources = _sources(args)
    estimated = _estimate_mpps(sources, request, progress) if request is not None else {}
    if estimated:
        sources = [replace(s, mpp=estimated[s.id]["mpp"],
                           mpp_source=estimated[s.id]["mpp_source"]) if s.id in estimated
                   else s for s in sources]
    class_map = ClassMap.parse(args.classes) if args.classes else None
    with warnings.catch_warnings():  # they are listed in the summary's "warnings"
        warnings.simplefilter("ignore", TilingWarning)
        try:
            summary = make_dataset(sources, args.out, class_map=class_map, config=config,
                                   progress=progress)
        except SlideError as e:
            if args.mpp_override is None and "--mpp" in str(e):
                raise SlideError(f"{e} For `magnipath tile`, --mpp is the target resolution: "
                                 "give the scan's resolution with --mpp-override (or "
                                 "--mpp-override estimate[:MODEL_DIR] to estimate and use it; "
                                 "the summary then lists it as estimated).") from e
            raise
    if estimated:
        summary = {**summary, "estimated_mpp": estimated}
    return summary


def _estimate_mpps(sources: list, request, progress: ProgressCallback) -> dict[str, dict]:
    """Estimated level-0 mpp of the sources whose files give none, by slide id.

    Each entry is what :func:`magnipath.magnification.resolve_slide_mpp` records
    (``mpp``, ``mpp_source`` such as ``"estimated (baseline)"``, ``mpp_estimate``), as
    in the summaries of ``magnipath infer`` and ``magnipath mitosis``.
    """
    out = {}
    for s in sources:
        if s.mpp is not None:  # a QuPath project's own mpp
            continue
        _, said = resolve_slide_mpp(request, s.path, progress)
        if "mpp_estimate" in said:  # else the file gives one: it is kept
            out[s.id] = said
    return out
