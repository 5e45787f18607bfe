"""The slides of a cohort: a folder, a list of paths, a CSV manifest or a QuPath project."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from magnipath._errors import MagnipathError

SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", ".ndpi", ".mrxs", ".scn",
                  ".bif", ".vms", ".vmu", ".svslide")
"""File names a cohort folder is searched for (case-insensitive)."""


class CohortError(MagnipathError):
    """A cohort cannot be run as asked (inputs, cluster, output folder)."""


@dataclass(frozen=True)
class CohortSlide:
    """One slide of a cohort.

    Attributes
    ----------
    path : Path
        The slide file (workers open it by this path: it must be reachable from
        every worker, e.g. on a shared file system).
    name : str
        The slide's name in reports and output files (file name without its
        slide suffix; the QuPath image name for a project cohort).
    mpp : float or None
        Level-0 µm/px override (CSV manifest ``mpp`` column, or the QuPath
        project's value); None: the file's own.
    mpp_source : str or None
        Where ``mpp`` comes from (``"manifest"``, ``"qupath"``, ``"override"``).
    group : str or None
        Patient/group (CSV manifest ``group`` column); default the slide name.
    image : str or None
        The QuPath image name, for a project cohort.
    """

    path: Path
    name: str
    mpp: float | None = None
    mpp_source: str | None = None
    group: str | None = None
    image: str | None = None


def slide_name(path: str | os.PathLike) -> str:
    """File name without its slide suffix (``a.ome.tif`` -> ``a``)."""
    name = Path(path).name
    for suf in SLIDE_SUFFIXES:
        if name.lower().endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return Path(name).stem or name


def is_slide(path: Path) -> bool:
    """A file whose name ends with a slide suffix (not a hidden or temporary file)."""
    n = path.name.lower()
    return path.is_file() and not n.startswith(".") and n.endswith(SLIDE_SUFFIXES)


def from_folder(folder: str | os.PathLike) -> list[CohortSlide]:
    """Every slide file under ``folder`` (recursive), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise CohortError(f"cohort folder {root} does not exist or is not a folder")
    found = sorted(p for p in root.rglob("*") if is_slide(p)
                   and not any(part.endswith(".zarr") for part in p.relative_to(root).parts))
    if not found:
        raise CohortError(f"cohort folder {root} holds no slide file (looked for "
                          f"{', '.join(SLIDE_SUFFIXES)} in it and its sub-folders)")
    return [CohortSlide(path=p, name=slide_name(p)) for p in found]


def from_paths(paths: Sequence[str | os.PathLike]) -> list[CohortSlide]:
    """The given slide files, in order; each must exist."""
    out = []
    for p in map(Path, paths):
        if not p.is_file():
            raise CohortError(f"slide {p} not found; give existing slide files")
        out.append(CohortSlide(path=p, name=slide_name(p)))
    if not out:
        raise CohortError("the cohort is empty: give at least one slide")
    return out


def from_csv(manifest: str | os.PathLike) -> list[CohortSlide]:
    """Slides of a CSV manifest with a header ``slide,mpp,group`` (mpp and group optional).

    ``slide`` is a path, relative to the manifest's folder unless absolute; an
    empty ``mpp`` keeps the file's own resolution (µm/px); an empty ``group``
    makes the slide its own group.
    """
    path = Path(manifest)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    except OSError as e:
        raise CohortError(f"cannot read the cohort manifest {path}: {e}") from e
    if not rows or "slide" not in header:
        raise CohortError(f"cohort manifest {path}: give a CSV file with a header line "
                          "'slide,mpp,group' (mpp and group may be empty) and one slide per line")
    out = []
    for i, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("slide"):
            continue
        p = Path(row["slide"])
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise CohortError(f"cohort manifest {path}, line {i}: slide {p} not found")
        mpp = None
        if row.get("mpp"):
            try:
                mpp = float(row["mpp"])
            except ValueError:
                mpp = -1.0
            if not mpp > 0:
                raise CohortError(f"cohort manifest {path}, line {i}: mpp {row['mpp']!r} is "
                                  "not a positive number of µm per pixel (leave it empty to "
                                  "use the file's own)")
        out.append(CohortSlide(path=p, name=slide_name(p), mpp=mpp,
                               mpp_source="manifest" if mpp else None,
                               group=row.get("group") or None))
    if not out:
        raise CohortError(f"cohort manifest {path} lists no slide")
    return out


def from_qupath_project(project: str | os.PathLike,
                        images: Sequence[str] | None = None) -> list[CohortSlide]:
    """The images of a QuPath project (read-only; every image, or those named)."""
    from qupath_bridge.project import Project

    with Project(project, mode="r") as proj:
        infos = proj.images
    wanted = list(images) if images else [i.name for i in infos]
    missing = sorted(set(wanted) - {i.name for i in infos})
    if missing:
        raise CohortError(f"{project}: no image named {missing}; 'magnipath qupath list "
                          "PROJECT' shows the names")
    out = []
    for info in infos:
        if info.name not in wanted:
            continue
        if info.path is None or not Path(info.path).is_file():
            raise CohortError(f"{project}: the file of image {info.name!r} is missing (moved?); "
                              "fix its path in QuPath first")
        out.append(CohortSlide(path=Path(info.path), name=slide_name(info.path),
                               mpp=info.mpp, mpp_source="qupath" if info.mpp else None,
                               image=info.name))
    if not out:
        raise CohortError(f"{project}: the project has no image")
    return out


def collect(source: str | os.PathLike | Sequence[str | os.PathLike], *,
            images: Sequence[str] | None = None, qupath: bool = False) -> list[CohortSlide]:
    """The slides of a cohort given as a folder, a CSV manifest, a list of files or a project.

    Parameters
    ----------
    source : path or list of paths
        A folder (searched recursively for slide files), a ``.csv`` manifest
        (``slide,mpp,group``), a list of slide files, or (``qupath=True``) a
        QuPath project (``.qpproj`` or its folder).
    images : list of str, optional
        With a project: the image names to take (default all).

    Raises
    ------
    CohortError
        Nothing to run, a missing file, a bad manifest line, or two slides whose
        outputs would share a name.
    """
    if qupath:
        slides = from_qupath_project(source, images)  # type: ignore[arg-type]
    elif isinstance(source, str | os.PathLike):
        p = Path(source)
        if p.is_dir():
            slides = from_folder(p)
        elif p.suffix.lower() == ".csv":
            slides = from_csv(p)
        elif p.is_file():
            slides = from_paths([p])
        else:
            raise CohortError(f"cohort {p} not found: give a folder of slides, a CSV manifest "
                              "(slide,mpp,group) or a QuPath project")
    else:
        slides = from_paths(source)
    seen: dict[str, Path] = {}
    for s in slides:
        other = seen.setdefault(s.name.lower(), s.path)
        if other != s.path:
            raise CohortError(f"slides {other} and {s.path} have the same name {s.name!r}: "
                              "their outputs would overwrite each other; rename one, or run "
                              "them as separate cohorts with different --out folders")
    return slides
