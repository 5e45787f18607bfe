"""Work with QuPath projects: list images, export annotations, import predictions, create.

  magnipath qupath list PROJECT
  magnipath qupath export PROJECT --out DIR
  magnipath qupath import PROJECT PRED.geojson --image NAME [--as detections]
  magnipath qupath create PROJECT SLIDE... [--annotations GEOJSON...]

PROJECT is a QuPath project.qpproj file or its folder. These commands need a
QuPath installation (0.5 or 0.6) found by paquo: set PAQUO_QUPATH_DIR to the
QuPath folder. GeoJSON files are QuPath's dialect, coordinates in level-0 pixels.
Reading never changes a file of the project; import backs up the image's data
first and replaces only the objects MagniPath wrote before.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from magnipath.progress import ProgressCallback, report

NAME = "qupath"
HELP = "QuPath projects: list, export annotations, import predictions, create"
ORDER = 30


def _common(p: argparse.ArgumentParser) -> None:
    # --json/--quiet are also accepted after the sub-command; SUPPRESS keeps a value given
    # before it (magnipath qupath --json list ...) from being reset to the default.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print a machine-readable JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars")
    p.add_argument("project", metavar="PROJECT", help="QuPath project.qpproj file or its folder")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="qupath_command", metavar="ACTION", required=True)

    q = sub.add_parser("list", help="list the images: name, id, slide path, size (px), mpp (µm/px)")
    _common(q)
    q.set_defaults(_action=_list)

    q = sub.add_parser("export", help="write each image's annotations to DIR/<image>.geojson")
    _common(q)
    q.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (QuPath GeoJSON, coordinates in level-0 pixels)")
    q.add_argument("--image", action="append", metavar="NAME",
                   help="export only this image (name, entry id, slide file name or 0-based "
                        "index); repeatable; default: every image")
    q.add_argument("--include-detections", action="store_true",
                   help="also export detections (tiles and cells included)")
    q.add_argument("--include-predictions", action="store_true",
                   help="also export objects MagniPath wrote into the project")
    q.add_argument("--no-points", action="store_true", help="leave out point annotations")
    q.set_defaults(_action=_export)

    q = sub.add_parser("import", help="replace MagniPath's objects of one image by a GeoJSON file")
    _common(q)
    q.add_argument("predictions", metavar="PRED.geojson",
                   help="QuPath GeoJSON of predictions (level-0 pixels of the image)")
    q.add_argument("--image", required=True, metavar="NAME",
                   help="target image: name, entry id, slide file name or 0-based index")
    q.add_argument("--as", dest="as_type", default="annotations",
                   choices=["annotations", "detections", "annotation", "detection"],
                   help="QuPath object type to create (default annotations; detections are "
                        "lighter for many objects)")
    q.set_defaults(_action=_import)

    q = sub.add_parser("create", help="create a new project from slides (+ GeoJSON per slide)")
    _common(q)
    q.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files, in order")
    q.add_argument("--annotations", nargs="+", metavar="GEOJSON",
                   help="one QuPath GeoJSON per slide, in the same order (level-0 pixels); "
                        "'-' for a slide without")
    q.add_argument("--image-type", default="Brightfield (H&E)",
                   help="QuPath image type of every slide (default 'Brightfield (H&E)')")
    q.set_defaults(_action=_create)


@contextlib.contextmanager
def _java_console_to_stderr() -> Iterator[None]:
    """Send anything QuPath's Java code prints on the process's stdout to stderr.

    Keeps ``--json`` output parseable; Python's own stdout is restored afterwards.
    """
    try:
        fd_out, fd_err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced streams (tests): nothing to do
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd_out)
    os.dup2(fd_err, fd_out)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, fd_out)
        os.close(saved)


def run(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    with _java_console_to_stderr():
        return args._action(args, progress)


def _list(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge.project import Project

    with Project(args.project, "r") as p:
        n = len(p)
        images = []
        for i in range(n):
            images.append(p.image_info(i).to_dict())
            report(progress, "qupath/list", i + 1, n)
        classes = [{"name": name, "color": color} for name, color in p.path_classes]
        return {"project": str(p.path), "n_images": n, "images": images,
                "path_classes": classes,
                "missing_slides": [im["name"] for im in images if not im["slide_found"]]}


def _export(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge.geojson import write_geojson
    from qupath_bridge.project import Project, safe_file_name

    out = Path(args.out)
    types = ("annotation", "detection", "tile", "cell") if args.include_detections else (
        "annotation",)
    files, used = [], set()
    with Project(args.project, "r") as p:
        entries = p.image_entries
        indices = range(len(entries)) if not args.image else [
            p.image_info(name).index for name in args.image]
        for k, i in enumerate(indices):
            name, entry_id = entries[i]
            objs = p.read_objects(i, types=types, include_points=not args.no_points,
                                  include_predictions=args.include_predictions)
            stem = safe_file_name(name)
            if stem.lower() in used:  # two images with one name: keep both files
                stem = f"{stem}-{entry_id}"
            used.add(stem.lower())
            stats: dict[str, int] = {}
            f = write_geojson(objs, out / f"{stem}.geojson", stats=stats)
            files.append({"image": name, "file": str(f), "objects": stats.get("written", 0)})
            report(progress, "qupath/export", k + 1, len(indices))
        return {"project": str(p.path), "out": str(out), "n_images": len(files),
                "n_objects": sum(f["objects"] for f in files), "files": files}


def _import(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge.geojson import read_geojson
    from qupath_bridge.project import Project

    as_type = "detection" if args.as_type.startswith("detection") else "annotation"
    with Project(args.project, "r+") as p:  # fails early without QuPath
        objs = read_geojson(args.predictions)
        result = p.write_predictions(args.image, objs, as_type=as_type)
        return {"project": str(p.path), "predictions": str(args.predictions), **result}


def _create(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge.project import Project, create_project

    annotations = None
    if args.annotations is not None:
        annotations = [None if a in ("-", "none") else a for a in args.annotations]
    path = create_project(args.project, args.slides, annotations,
                          image_type=args.image_type)
    with Project(path, "r") as p:
        images = [im.to_dict() for im in p.images]
    return {"project": str(path), "n_images": len(images), "images": images}
