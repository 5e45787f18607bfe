"""Cohorts: many slides (a folder, a CSV manifest, a QuPath project) on dask.distributed.

One engine for the CLI, the Python API and napari. Each slide is a short chain
of dask tasks that run the single-slide core functions on a worker (the slide
is opened there by its path; only small summaries travel); results are
resumable (finished slides are skipped, a half-done prediction store resumes by
chunk) and a bad slide fails alone. QuPath projects are read and written only in
the client process, one image at a time.

>>> from magnipath.cohort import collect, infer_job, run_cohort  # doctest: +SKIP
>>> slides = collect("slides/")  # doctest: +SKIP
>>> rep = run_cohort(slides, infer_job("model/", "pred/"), "pred/")  # doctest: +SKIP
>>> rep["done"], rep["failed"]  # doctest: +SKIP
"""

from magnipath.cohort._build import evaluate_job, infer_job, suggest_job
from magnipath.cohort._cluster import (
    ALLOWED_FAILURES,
    ENV_SCHEDULER,
    ClusterPlan,
    cohort_client,
    machine_cores,
    parse_gpus,
    plan_cluster,
)
from magnipath.cohort._engine import CohortFailed, CohortJob, Step, finished, run_cohort
from magnipath.cohort._inputs import SLIDE_SUFFIXES, CohortError, CohortSlide, collect, slide_name
from magnipath.cohort._tile import parts_folder, tile_cohort

__all__ = ["ALLOWED_FAILURES", "ENV_SCHEDULER", "SLIDE_SUFFIXES", "ClusterPlan", "CohortError",
           "CohortFailed", "CohortJob", "CohortSlide", "Step", "cohort_client", "collect",
           "evaluate_job", "finished", "infer_job", "machine_cores", "parse_gpus",
           "parts_folder", "plan_cluster", "run_cohort", "slide_name", "suggest_job",
           "tile_cohort"]
