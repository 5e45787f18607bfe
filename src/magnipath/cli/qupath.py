"""Work with QuPath projects: list images, export annotations, import predictions, create.

  magnipath qupath list PROJECT
  magnipath qupath export PROJECT --out DIR
  magnipath qupath import PROJECT PRED.geojson --image NAME [--as detections]
  magnipath qupath create PROJECT SLIDE... [--annotations GEOJSON...]
  magnipath qupath repair PROJECT [--image NAME] [--dry-run]
  magnipath qupath backups PROJECT [--image NAME]
  magnipath qupath restore PROJECT --image NAME [--backup ID]

PROJECT is a QuPath project.qpproj file or its folder. These commands need a
QuPath installation (0.5 or 0.6) found by paquo: set PAQUO_QUPATH_DIR to the
QuPath folder. GeoJSON files are QuPath's dialect, coordinates in level-0 pixels.
Reading never changes a file of the project; import backs up the image's data
first and replaces only the objects MagniPath wrote before. repair, backups and
restore work on the project's files alone (no QuPath needed): repair puts back
the last good version of images whose data file an interrupted save left broken.
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

    q = sub.add_parser("repair", help="check every image's data file; put back the last good "
                                      "version of broken ones (from data.qpdata.bkp, else the "
                                      "newest good MagniPath backup)")
    _common(q)
    q.add_argument("--image", action="append", metavar="NAME",
                   help="only this image (name, entry id or 0-based index); repeatable")
    q.add_argument("--dry-run", action="store_true", help="report, change nothing")
    q.set_defaults(_action=_repair, _no_java=True)

    q = sub.add_parser("backups", help="list MagniPath's backups of each image, with their "
                                       "validation (good or not)")
    _common(q)
    q.add_argument("--image", action="append", metavar="NAME",
                   help="only this image (name, entry id or 0-based index); repeatable")
    q.set_defaults(_action=_backups, _no_java=True)

    q = sub.add_parser("restore", help="put back an image's data from a MagniPath backup "
                                       "(default: the newest good one)")
    _common(q)
    q.add_argument("--image", required=True, metavar="NAME",
                   help="image: name, entry id or 0-based index")
    q.add_argument("--backup", metavar="ID",
                   help="backup id (from `magnipath qupath backups`); default: the newest good")
    q.set_defaults(_action=_restore, _no_java=True)


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
    if getattr(args, "_no_java", False):
        return args._action(args, progress)
    with _java_console_to_stderr():
        summary = args._action(args, progress)
    if args._action is _list and not getattr(args, "json", False):
        print(format_image_table(summary))  # readable table; the summary keeps its scalars
        return {k: summary[k] for k in ("project", "n_images", "missing_slides")}
    return summary


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


def format_image_table(listed: dict) -> str:
    """The images of a ``qupath list`` summary as an aligned text table, then the classes.

    Columns: index, image name, entry id, level-0 size in pixels, µm/px, slide path
    (``MISSING`` when the slide file is not where the project says).
    """
    head = ("#", "image", "id", "size (px)", "µm/px", "slide")
    rows = [head]
    for im in listed["images"]:
        size = f"{im['width']} x {im['height']}" if im.get("width") else "-"
        mpp = f"{im['mpp']:.4g}" if im.get("mpp") else "-"
        where = im.get("path") or im.get("uri") or "-"
        rows.append((str(im["index"]), im["name"], str(im["id"]), size, mpp,
                     where if im.get("slide_found") else f"MISSING {where}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(head) - 1)]
    lines = ["  ".join([*(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)), r[-1]])
             .rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in [*widths, len(head[-1])]))
    classes = listed.get("path_classes") or []
    if classes:
        names = ", ".join(c["name"] if not c.get("color") else
                          f"{c['name']} {tuple(c['color'])}" for c in classes)
        lines.append(f"path classes: {names}")
    return "\n".join(lines)


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


def _project_file(project: str) -> Path:
    from qupath_bridge._project_support import project_file

    f = project_file(project)
    if not f.is_file():
        from qupath_bridge.errors import QuPathBridgeError

        raise QuPathBridgeError(f"no QuPath project at {project}: {f} does not exist")
    return f


def _repair(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge._repair import repair_project

    f = _project_file(args.project)
    results = repair_project(f, args.image, dry_run=args.dry_run)
    report(progress, "qupath/repair", len(results), len(results))
    failed = [r for r in results if r["action"] == "cannot repair"]
    summary = {"project": str(f), "dry_run": args.dry_run, "n_images": len(results),
               "broken": [r["image"] for r in results if r["status"] == "broken"],
               "repaired": [r["image"] for r in results if r["action"] == "restored"],
               "images": results}
    if failed:
        from qupath_bridge._integrity import IntegrityError

        raise IntegrityError(" ".join(r["error"] for r in failed)
                             + (f" (repaired: {', '.join(summary['repaired'])})"
                                if summary["repaired"] else ""))
    return summary


def _backups(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge._backups import KEEP_BAD, KEEP_GOOD, MAX_BYTES, list_backups
    from qupath_bridge._integrity import read_project_images
    from qupath_bridge._project_support import pick_image

    f = _project_file(args.project)
    entries = read_project_images(f)
    keys = [(n, e, None) for n, e in entries]
    chosen = (range(len(entries)) if not args.image
              else sorted({pick_image(keys, im, str(f)) for im in args.image}))
    images = []
    for i in chosen:
        name, eid = entries[i]
        bs = list_backups(f.parent, eid)
        good = [b for b in bs if b.good]
        images.append({"image": name, "entry_id": eid, "n_backups": len(bs),
                       "newest_good": good[-1].id if good else None,
                       "backups": [b.to_dict() for b in bs]})
    return {"project": str(f), "policy": {"keep_good": KEEP_GOOD, "keep_broken": KEEP_BAD,
                                          "max_bytes_per_image": MAX_BYTES},
            "images": images}


def _restore(args: argparse.Namespace, progress: ProgressCallback) -> dict:
    from qupath_bridge._jvm import deferred_signals
    from qupath_bridge._repair import restore_image

    f = _project_file(args.project)
    with deferred_signals("the restore"):
        result = restore_image(f, args.image, args.backup)
    return {"project": str(f), **result}
