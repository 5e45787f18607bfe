"""The cohort engine: one chain of dask tasks per slide, resumable, failing slide by slide."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magnipath._errors import Cancelled, MagnipathError
from magnipath._io import atomic_write_text
from magnipath.cohort._cluster import ClusterPlan, cohort_client, plan_cluster
from magnipath.cohort._inputs import CohortError, CohortSlide
from magnipath.cohort._jobs import PROGRESS_TOPIC
from magnipath.cohort._report import write_report
from magnipath.progress import CancelCallback, ProgressCallback, report

MARKERS = ".magnipath-cohort"
"""Sub-folder of the output holding one ``<name>.json`` per finished slide."""


class CohortFailed(MagnipathError):
    """Some slides of a cohort failed; the others finished (the report lists both)."""


@dataclass
class Step:
    """One task of a slide's chain: ``fn(previous result or slide, *args)`` on a worker."""

    fn: Callable
    args: tuple = ()
    gpu: bool = False
    name: str = "task"


@dataclass
class CohortJob:
    """What to do per slide, what identifies the result, and what a finished slide left.

    Attributes
    ----------
    kind : str
        ``"infer"``, ``"evaluate"``, ``"suggest-mpp"``...
    steps : callable
        ``steps(slide) -> list[Step]``; the first gets the slide, the next ones
        the previous step's summary.
    fingerprint : callable
        ``fingerprint(slide) -> dict``: what identifies a finished slide's result
        (inputs, settings); a slide whose marker holds the same fingerprint and
        whose ``outputs`` exist is skipped.
    outputs : callable
        ``outputs(slide, summary) -> list of paths`` a finished slide must have.
    on_done : callable, optional
        Client-side, serially, for each finished slide (QuPath write-back):
        ``on_done(slide, summary) -> dict`` merged into the summary.
    before : callable, optional
        Client-side, once, with the slides to run, before anything is submitted.
    pooled : callable, optional
        ``pooled(summaries) -> dict`` added to the report (e.g. a pooled confusion matrix).
    settings : dict
        JSON-ready settings for the report.
    """

    kind: str
    steps: Callable[[CohortSlide], list[Step]]
    fingerprint: Callable[[CohortSlide], dict]
    outputs: Callable[[CohortSlide, dict], list[str]]
    on_done: Callable[[CohortSlide, dict], dict] | None = None
    before: Callable[[list[CohortSlide]], None] | None = None
    pooled: Callable[[list[dict]], dict] | None = None
    settings: dict = field(default_factory=dict)


def file_identity(path: str | os.PathLike) -> dict:
    """Path, size and modification time of a file (or a folder's ``.pt``-free identity)."""
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _marker(out: Path, slide: CohortSlide, kind: str) -> Path:
    return out / MARKERS / f"{slide.name}.{kind}.json"


def finished(out: Path, slide: CohortSlide, job: CohortJob) -> dict | None:
    """The summary of a slide finished by an earlier run with the same fingerprint, or None."""
    path = _marker(out, slide, job.kind)
    try:
        data = json.loads(path.read_text())
        if data.get("fingerprint") != _digest(job.fingerprint(slide)):
            return None
        summary = data["summary"]
    except (OSError, ValueError, KeyError, TypeError, MagnipathError):
        return None
    if not all(Path(p).exists() for p in job.outputs(slide, summary)):
        return None
    return summary


def _events(client, sink: collections.deque) -> Callable[[], None]:
    """Subscribe to the workers' progress events; returns the unsubscriber."""
    def handler(event) -> None:
        sink.append(event[1] if isinstance(event, tuple) and len(event) == 2 else event)

    try:
        client.subscribe_topic(PROGRESS_TOPIC, handler)
    except Exception:  # noqa: BLE001 - progress is optional
        return lambda: None

    def unsubscribe() -> None:
        try:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        except Exception:  # noqa: BLE001
            pass

    return unsubscribe


def _submit(client, slide: CohortSlide, job: CohortJob, plan: ClusterPlan, run_id: str):
    prev: Any = slide
    fut = None
    for i, step in enumerate(job.steps(slide)):
        resources = {"GPU": 1} if (step.gpu and plan.uses_gpu) else None
        fut = client.submit(step.fn, prev, *step.args, key=f"{step.name}-{slide.name}-{run_id}",
                            resources=resources, pure=False, retries=0,
                            priority=-i)
        prev = fut
    return fut


def run_cohort(slides: Sequence[CohortSlide], job: CohortJob, out: str | os.PathLike, *,
               client=None, scheduler: str | None = None, workers: int | None = None,
               gpus: str | Sequence[int] | None = None, dashboard: bool = False,
               progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None,
               connect_timeout: float = 5.0) -> dict:
    """Run ``job`` over every slide on a dask.distributed cluster; write the report.

    Parameters
    ----------
    slides : list of CohortSlide
        From :func:`magnipath.cohort.collect`.
    job : CohortJob
        :func:`infer_job`, :func:`evaluate_job`, :func:`suggest_job`...
    out : path
        Output folder: per-slide outputs, ``cohort.json``, ``cohort.csv`` and the
        markers of finished slides (``.magnipath-cohort/``).
    client : distributed.Client, optional
        Use this client (tests, napari, a notebook); else ``scheduler`` or the
        embedded cluster (:func:`magnipath.cohort.plan_cluster`).
    scheduler, workers, gpus, dashboard
        Cluster choice (see :func:`plan_cluster`); ``dashboard``: start the dask
        dashboard and report its link (progress event ``cohort/dashboard``).
    progress, cancel : callables, optional
        Progress events: ``cohort`` (slides finished / total) and ``cohort/slide``
        (one slide's stage, ``info["slide"]``); cancel: pending slides are
        cancelled, finished ones stay (their markers are written).

    Returns
    -------
    dict
        The report (also in ``OUT/cohort.json``): counts, cluster, one summary
        per slide.

    Raises
    ------
    CohortError
        Bad inputs or an unreachable scheduler (nothing written).
    CohortFailed
        After the report is written, when some slides failed (names the count).
    Cancelled
        After the report is written, when ``cancel`` stopped the run.
    """
    out = Path(out)
    t0 = time.perf_counter()
    slides = list(slides)
    if not slides:
        raise CohortError("the cohort is empty: give at least one slide")
    plan = plan_cluster(len(slides), scheduler=scheduler, workers=workers, gpus=gpus)
    results: dict[str, dict] = {}
    todo: list[CohortSlide] = []
    for s in slides:
        prior = finished(out, s, job)
        if prior is not None:
            results[s.name] = {**prior, "status": "skipped", "previous_status": "done"}
        else:
            todo.append(s)
    report(progress, "cohort", len(slides) - len(todo), len(slides))
    cancelled = False
    dashboard_link = None
    timings: dict[str, float] = {}
    if todo:
        plan = plan_cluster(len(todo), scheduler=scheduler, workers=workers, gpus=gpus)
        if client is None and plan.address:
            # fail fast, before anything is written, when the scheduler is not there
            ctx = cohort_client(plan, connect_timeout=connect_timeout)
        else:
            ctx = cohort_client(plan, client=client, dashboard=dashboard,
                                connect_timeout=connect_timeout)
        t_cluster = time.perf_counter()
        with ctx as c:
            timings["cluster_start_s"] = round(time.perf_counter() - t_cluster, 3)
            t_run = time.perf_counter()
            out.mkdir(parents=True, exist_ok=True)
            (out / MARKERS).mkdir(exist_ok=True)
            if dashboard:
                import importlib.util

                dashboard_link = (getattr(c, "dashboard_link", None)
                                  if importlib.util.find_spec("bokeh") is not None else
                                  "unavailable: the dask dashboard needs bokeh (pip install "
                                  "'bokeh>=3.1')")
                report(progress, "cohort/dashboard", 0, None, link=str(dashboard_link))
            if job.before is not None:
                job.before(todo)
            cancelled = _drive(c, todo, job, plan, out, results, progress, cancel,
                               len(slides))
            timings["run_s"] = round(time.perf_counter() - t_run, 3)
    else:
        out.mkdir(parents=True, exist_ok=True)
    summaries = [results.get(s.name) or {"name": s.name, "slide": str(s.path),
                                          "status": "cancelled"} for s in slides]
    counts = collections.Counter(r["status"] for r in summaries)
    ran = sum(1 for r in summaries if r["status"] in ("done", "failed"))
    rep = {"job": job.kind, "out": str(out), "n_slides": len(slides), "ran": ran,
           "done": counts.get("done", 0), "skipped": counts.get("skipped", 0),
           "failed": counts.get("failed", 0), "cancelled": counts.get("cancelled", 0),
           "seconds": round(time.perf_counter() - t0, 3), "timings": timings,
           "cluster": plan.describe() if client is None else {"scheduler": "given client"},
           "settings": job.settings, "slides": summaries}
    if dashboard_link:
        rep["dashboard"] = str(dashboard_link)
    if not todo:
        rep["note"] = f"nothing to run: all {len(slides)} slides were already done"
    if job.pooled is not None:
        rep["pooled"] = job.pooled([r for r in summaries if r["status"] in ("done", "skipped")])
    write_report(rep, out)
    if cancelled:
        raise Cancelled(f"cohort cancelled: {rep['done']} slides finished (kept), "
                        f"{rep['cancelled']} not run; report in {out / 'cohort.json'}")
    if rep["failed"]:
        failed = [r for r in summaries if r["status"] == "failed"]
        first = failed[0]
        raise CohortFailed(
            f"{rep['failed']} of {len(slides)} slides failed ({rep['done']} done, "
            f"{rep['skipped']} already done before); first: {first['name']}: {first['error']} "
            f"Each slide's error is in {out / 'cohort.csv'} and {out / 'cohort.json'}; fix "
            "those slides and run the same command again (finished slides are skipped).")
    return rep


def _drive(client, todo: list[CohortSlide], job: CohortJob, plan: ClusterPlan, out: Path,
           results: dict, progress, cancel, n_total: int) -> bool:
    """Submit every slide, collect results as they come; True when cancelled."""
    run_id = hashlib.sha1(f"{time.time_ns()}-{os.getpid()}".encode()).hexdigest()[:8]
    events: collections.deque = collections.deque()
    unsubscribe = _events(client, events)
    futures = {_submit(client, s, job, plan, run_id): s for s in todo}
    pending = set(futures)
    try:
        while pending:
            if cancel is not None and cancel():
                client.cancel(list(pending))
                return True
            done = {f for f in pending if f.done()}
            if not done and not events:
                time.sleep(0.1)
            while events:
                ev = events.popleft()
                if isinstance(ev, dict):
                    report(progress, "cohort/slide", int(ev.get("done") or 0), ev.get("total"),
                           slide=str(ev.get("slide")), step=str(ev.get("stage")))
            for fut in done:
                pending.discard(fut)
                slide = futures[fut]
                summary = _collect(fut, slide)
                if summary["status"] == "done" and job.on_done is not None:
                    try:
                        summary.update(job.on_done(slide, summary))
                    except Exception as e:  # noqa: BLE001 - this slide fails, not the run
                        summary = {**summary, "status": "failed",
                                   "error": f"{slide.name}: writing its results failed: {e}"}
                if summary["status"] == "done":
                    atomic_write_text(_marker(out, slide, job.kind), json.dumps(
                        {"fingerprint": _digest(job.fingerprint(slide)),
                         "summary": summary}, default=str))
                results[slide.name] = summary
                report(progress, "cohort", len(results), n_total, slide=slide.name,
                       status=summary["status"])
    finally:
        unsubscribe()
    return False


def _collect(fut, slide: CohortSlide) -> dict:
    """The slide's summary from its last future; a lost task becomes a failed slide."""
    try:
        summary = fut.result()
    except Exception as e:  # noqa: BLE001 - KilledWorker after the allowed retries...
        name = type(e).__name__
        hint = (" its worker died on every try (out of memory? give the workers more "
                "memory or use fewer of them)" if name == "KilledWorker" else "")
        return {"name": slide.name, "slide": str(slide.path), "status": "failed",
                "error": f"{slide.path}: {name}: {e}{hint}"}
    summary = dict(summary)
    summary.setdefault("name", slide.name)
    if slide.image is not None:
        summary["image"] = slide.image
    if summary.get("status") == "inferred":  # a chain without a vectorise step
        summary["status"] = "done"
    return summary

