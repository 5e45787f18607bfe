"""``tile`` over a cohort: one dataset shard per slide on the workers, merged by the client.

The class map and the patient-wise split are decided once, in the client, over
every slide of the cohort (:func:`magnipath.dataset.assign_splits`, exactly as
one ``magnipath tile`` run over all the slides would); each worker cuts one
slide into its own shard (:func:`magnipath.tiling.make_dataset`), and the
client copies the shards, in the order of the slides, into one dataset folder
written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from magnipath._errors import TilingError
from magnipath.cohort._engine import CohortJob, Step, file_identity, run_cohort
from magnipath.cohort._inputs import CohortSlide
from magnipath.cohort._jobs import _failed, _forwarder
from magnipath.progress import ProgressCallback, report


def parts_folder(out: str | os.PathLike) -> Path:
    """``OUT.cohort/``: the shards, markers and cohort report of a tile cohort into ``OUT``."""
    out = Path(out)
    return out.with_name(out.name + ".cohort")


def _objects_digest(objs) -> str | None:
    """A digest of in-memory annotations (classes and geometries), None for none."""
    if not objs:
        return None
    h = hashlib.sha256()
    for o in objs:
        h.update(str(o.classification).encode())
        h.update(o.geometry.wkb)
    return h.hexdigest()


def tile_task(slide: CohortSlide, source, shard: str, class_map: dict, config) -> dict:
    """Worker: one slide into its own dataset shard (its split is set at the merge)."""
    from magnipath.classes import ClassMap
    from magnipath.tiling import TilingWarning, make_dataset

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TilingWarning)
            summary = make_dataset([source], shard, class_map=ClassMap.from_dict(class_map),
                                   config=config, progress=_forwarder(slide.name))
    except TilingError as e:
        if str(e).startswith("no tile passed the filters"):  # an empty shard, not a failure
            return {"name": slide.name, "slide": str(slide.path), "status": "done",
                    "shard": None, "n_tiles": 0, "note": str(e),
                    "seconds": round(time.perf_counter() - t0, 3)}
        return _failed(slide, e, t0)
    except Exception as e:  # noqa: BLE001 - a bad slide fails alone, with its message
        return _failed(slide, e, t0)
    return {"name": slide.name, "slide": str(slide.path), "status": "done", "shard": shard,
            "n_tiles": summary["n_tiles"], "warnings": summary.get("warnings", []),
            "seconds": round(time.perf_counter() - t0, 3)}


def _merge(sources: Sequence, rows: dict[str, dict], splits: dict[str, str], class_map,
           config, out: Path, seconds: float) -> dict:
    """Copy the shards into one dataset at ``out`` (atomic), with the cohort-wide splits."""
    from magnipath._io import atomic_path
    from magnipath.dataset import SPLITS, open_dataset
    from magnipath.tiling._make import _check_out
    from magnipath.tiling._writer import TileResult, TileWriter

    shards = {s.id: open_dataset(rows[s.id]["shard"]) for s in sources if rows[s.id]["shard"]}
    n = sum(len(d) for d in shards.values())
    if n == 0:
        raise TilingError("no tile of any slide passed the filters, nothing was written; relax "
                          "--min-tissue/--min-labelled/--require-class")
    with_points = any(d.has_points for d in shards.values())
    size = config.geometry.target_size
    counts = {k: np.zeros(class_map.n_classes, np.int64) for k in ("all", *SPLITS)}
    slides, summary = [], {}
    _check_out(out)
    with atomic_path(out, is_dir=True) as tmp:
        writer = TileWriter(tmp, n, config.geometry.n_inputs, size, with_points)
        try:
            for s in sources:
                split = splits[s.group_id]
                ds = shards.get(s.id)
                if ds is None:
                    slides.append({"slide_id": s.id, "path": str(Path(s.path).resolve()),
                                   "group": s.group_id, "split": split, "n_tiles": 0})
                    continue
                (entry,) = ds.manifest["slides"]
                slides.append({**entry, "split": split})
                for k, v in ds.manifest["summary"].items():
                    if isinstance(v, int | float) and k not in ("seconds", "tiles_per_s"):
                        summary[k] = summary.get(k, 0) + v
                    elif isinstance(v, dict):
                        sub = summary.setdefault(k, {})
                        for kk, vv in v.items():
                            sub[kk] = sub.get(kk, 0) + vv
                for i, rec in enumerate(ds.records):
                    points = ds.points(i) if ds.has_points else (
                        np.zeros((size, size), np.float32) if with_points else None)
                    record = {k: v for k, v in rec.items() if k != "index"}
                    record["split"] = split
                    writer.add(TileResult(images=ds.images(i), label=ds.label(i),
                                          points=points, record=record))
                    c = np.asarray(rec["class_counts"], np.int64)
                    counts["all"] += c
                    counts[split] += c
            writer.close()
        except BaseException:
            writer.abort()
            raise
        first = next(iter(shards.values())).manifest
        manifest = {**first, "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "dataset_id": str(uuid.uuid4()),
                    "point_sigma": first["point_sigma"] if with_points else None,
                    "split": {"ratios": [float(v) for v in config.split], "seed": config.seed,
                              "by": "group"},
                    "slides": slides, "n_tiles": writer.n,
                    "class_pixel_counts": {k: v.tolist() for k, v in counts.items()},
                    "summary": {**summary, "seconds": round(seconds, 3),
                                "tiles_per_s": round(writer.n / seconds, 2) if seconds else None},
                    "cohort": True}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    names = {c.index: c.name for c in class_map.classes}
    return {"dataset": str(out), "n_tiles": writer.n,
            "n_tiles_per_slide": {s["slide_id"]: s["n_tiles"] for s in slides},
            "n_tiles_per_split": {sp: sum(s["n_tiles"] for s in slides if s["split"] == sp)
                                  for sp in SPLITS},
            "groups": splits,
            "class_pixel_counts": {names[i]: int(counts["all"][i]) for i in sorted(names)},
            "class_map": {c.name: c.index for c in class_map.classes}}


def tile_cohort(sources: Sequence, out: str | os.PathLike, *, config, class_map=None,
                client=None, scheduler: str | None = None, workers: int | None = None,
                dashboard: bool = False, progress: ProgressCallback | None = None) -> dict:
    """Tile a cohort into one dataset at ``out``, one slide per dask task.

    Parameters
    ----------
    sources : sequence of SlideSource
        The slides with their annotations (paths, or objects read by the client
        from a QuPath project) and groups (patients).
    out : path
        The dataset folder (``docs/dataset-format.md``); shards, markers and
        the cohort report live in ``OUT.cohort/`` (kept: a re-run skips the
        slides whose shard is finished).
    config : TilingConfig
    class_map : ClassMap, optional
        Default: derived from the annotations of every slide (as ``magnipath tile``).

    Returns
    -------
    dict
        The dataset summary (tiles per slide and split, groups, class pixel
        counts) and the cohort report under ``"cohort"``.
    """
    from magnipath.dataset import assign_splits
    from magnipath.tiling._labels import load_objects
    from magnipath.tiling._make import _class_map_for, checked_sources

    t0 = time.perf_counter()
    config.validate()
    sources = checked_sources(sources)
    if class_map is None:
        annotations = [load_objects(s.annotations, "annotations") for s in sources]
        class_map, _ = _class_map_for(annotations, sources, None, config)
        del annotations
    splits = assign_splits([s.group_id for s in sources], config.split, config.seed)
    parts = parts_folder(out)
    by_name = {s.id: s for s in sources}
    cm = class_map.to_dict()
    shard_config = replace(config, split=(1.0, 0.0, 0.0))

    def shard_of(slide: CohortSlide) -> str:
        return str(parts / "shards" / slide.name)

    def fingerprint(slide: CohortSlide) -> dict:
        src = by_name[slide.name]
        ann = src.annotations
        return {"job": "tile", "slide": file_identity(src.path), "mpp": src.mpp,
                "annotations": file_identity(ann) if isinstance(ann, str | os.PathLike)
                else _objects_digest(ann),
                "points": str(src.points), "class_map": cm, "config": repr(shard_config)}

    job = CohortJob(
        kind="tile",
        steps=lambda s: [Step(tile_task, (by_name[s.name], shard_of(s), cm, shard_config),
                              name="tile")],
        fingerprint=fingerprint,
        outputs=lambda s, r: [r["shard"]] if r.get("shard") else [],
        settings={"out": str(out), "target_mpp": config.geometry.target_mpp,
                  "size": config.geometry.target_size, "split": list(config.split),
                  "seed": config.seed})
    slides = [CohortSlide(path=Path(s.path), name=s.id, mpp=s.mpp, group=s.group_id)
              for s in sources]
    rep = run_cohort(slides, job, parts, client=client, scheduler=scheduler, workers=workers,
                     dashboard=dashboard, progress=progress)
    rows = {r["name"]: r for r in rep["slides"]}
    report(progress, "cohort/merge", 0, 1)
    summary = _merge(sources, rows, splits, class_map, config, Path(out),
                     time.perf_counter() - t0)
    report(progress, "cohort/merge", 1, 1)
    return {**summary, "cohort": {k: v for k, v in rep.items() if k != "slides"},
            "cohort_report": str(parts / "cohort.json")}
