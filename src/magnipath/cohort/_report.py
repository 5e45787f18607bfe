"""``cohort.json`` and ``cohort.csv``: one row per slide, written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from magnipath._io import atomic_write_text

BASE_COLUMNS = ("name", "slide", "image", "status", "seconds", "windows", "windows_run",
                "n_objects", "mpp", "mpp_source", "store", "geojson", "error")
"""Columns of ``cohort.csv`` before the per-class ones (``objects:CLASS``, ``area_mm2:CLASS``)."""


def slide_seconds(row: dict) -> float | None:
    """Wall time of a slide's tasks (infer + vectorise, or the one task), seconds."""
    parts = [row[k] for k in ("infer_seconds", "vectorize_seconds") if row.get(k) is not None]
    if parts:
        return round(sum(parts), 3)
    return row.get("seconds")


def csv_text(rows: list[dict]) -> str:
    """The CSV table of the slides' summaries (per-class columns sorted by class name)."""
    classes = sorted({c for r in rows for c in (r.get("objects_by_class") or {})}
                     | {c for r in rows for c in (r.get("area_mm2_by_class") or {})})
    extra = sorted({k for r in rows for k, v in r.items()
                    if k in ("mean_iou", "accuracy", "magnification", "file_mpp")})
    cols = [*BASE_COLUMNS, *extra, *(f"objects:{c}" for c in classes),
            *(f"area_mm2:{c}" for c in classes)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        flat = dict(r, seconds=slide_seconds(r))
        for c in classes:
            flat[f"objects:{c}"] = (r.get("objects_by_class") or {}).get(c, 0)
            flat[f"area_mm2:{c}"] = (r.get("area_mm2_by_class") or {}).get(c, 0.0)
        w.writerow(["" if flat.get(k) is None else flat.get(k) for k in cols])
    return buf.getvalue()


def write_report(rep: dict, out: Path) -> tuple[Path, Path]:
    """``OUT/cohort.json`` (everything) and ``OUT/cohort.csv`` (one row per slide)."""
    for r in rep["slides"]:
        r["seconds"] = slide_seconds(r)
    js = atomic_write_text(Path(out) / "cohort.json", json.dumps(rep, indent=1, default=str))
    cs = atomic_write_text(Path(out) / "cohort.csv", csv_text(rep["slides"]))
    return js, cs
