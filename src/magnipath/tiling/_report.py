"""What a tiling run tells: the manifest, the warnings and the "nothing passed" message."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magnipath import __version__
from magnipath.classes import ClassMap
from magnipath.dataset import FORMAT, VERSION
from magnipath.tiling._config import TilingConfig
from magnipath.tiling._labels import AnnotationCounts


def warnings_for(counts: AnnotationCounts, derived: ClassMap | None,
                 unlabelled: list[str]) -> list[str]:
    """One sentence per thing the user should know about the annotations of a run."""
    out = []
    if counts.clipped or counts.outside:
        out.append(f"{counts.clipped} annotations reached outside their slide and were clipped "
                   f"to it; {counts.outside} lay entirely outside and were dropped")
    if counts.invalid_repaired:
        out.append(f"{counts.invalid_repaired} invalid (e.g. self-intersecting) polygons were "
                   "repaired with shapely make_valid")
    if counts.unclassified_skipped:
        out.append(f"{counts.unclassified_skipped} unclassified polygons were skipped; give "
                   "them a class in QuPath to use them")
    if counts.lines_skipped or counts.points_skipped:
        out.append(f"{counts.lines_skipped} line annotations and {counts.points_skipped} points "
                   "of another class than the point class were skipped")
    if derived is not None and derived.classes:
        out.append("no class map given: derived from the annotation classes "
                   f"{ {c.name: c.index for c in derived.classes} }")
    if unlabelled:
        out.append(f"slides without annotations (labels all ignore): {unlabelled}")
    return out


def nothing_passed(n_grid: int, rejected: dict[str, int], config: TilingConfig) -> str:
    """The message of the error raised when no tile passes the filters."""
    return (f"no tile passed the filters, nothing was written: of {n_grid} grid tiles, "
            f"{rejected['min_tissue']} had a tissue fraction below {config.min_tissue} "
            f"(--min-tissue), {rejected['min_labelled']} had a labelled fraction not above "
            f"{config.min_labelled} (--min-labelled) and {rejected['require_classes']} had no "
            f"pixel of {list(config.require_classes)} (--require-class); relax these "
            "filters or check that the annotations belong to these slides")


def _source_path(src: Any) -> str | None:
    if src is None:
        return None
    if isinstance(src, str | os.PathLike):
        return str(Path(src).resolve())
    return "<in-memory objects>"


def manifest(jobs: list[Any], class_map: ClassMap, config: TilingConfig, stride: int,
             with_points: bool, n_tiles: int, split_counts: dict, counts: AnnotationCounts,
             seconds: float, derived: bool, rejected: dict) -> dict:
    """The ``manifest.json`` of a finished run (``docs/dataset-format.md``)."""
    return {
        "format": FORMAT, "version": VERSION,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "magnipath_version": __version__,
        "dataset_id": str(uuid.uuid4()),
        "geometry": config.geometry.to_dict(),
        "class_map": class_map.to_dict(),
        "class_map_derived": derived,
        "stride": stride,
        "filters": {"min_tissue": config.min_tissue, "min_labelled": config.min_labelled,
                    "require_classes": list(config.require_classes),
                    "tissue_mpp": config.tissue_mpp,
                    "glass_unlabelled": config.glass_unlabelled},
        "point_sigma": ({"a": config.point_a, "class": config.point_class}
                        if with_points else None),
        "split": {"ratios": [float(v) for v in config.split], "seed": config.seed, "by": "group"},
        "slides": [{"slide_id": j.source.id, "path": str(Path(j.source.path).resolve()),
                    "group": j.source.group_id, "split": j.split, "mpp": j.slide.mpp,
                    "mpp_source": (j.source.mpp_source if j.source.mpp is not None
                                   and j.source.mpp_source else j.slide.mpp_source),
                    "width": j.slide.width, "height": j.slide.height, "n_tiles": j.n_kept,
                    "n_grid": j.n_grid, "annotations": _source_path(j.source.annotations),
                    "points": _source_path(j.source.points)} for j in jobs],
        "n_tiles": n_tiles,
        "class_pixel_counts": {k: v.tolist() for k, v in split_counts.items()},
        "summary": {**counts.as_dict(), "rejected": rejected, "seconds": round(seconds, 3),
                    "tiles_per_s": round(n_tiles / seconds, 2) if seconds > 0 else None},
    }
