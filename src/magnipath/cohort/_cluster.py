"""The dask.distributed client of a cohort run: an embedded cluster or an existing one.

Embedded default (no scheduler address): one worker *process* per slot on this
machine, each running one task at a time (``nthreads=1``) with
``torch_threads = max(1, cores // workers)`` torch threads, so workers x torch
threads <= cores. Without GPUs the number of workers defaults to the number of
cores (capped by the number of slides to run); with GPUs there is one worker
per GPU (``CUDA_VISIBLE_DEVICES`` set to it, worker resource ``GPU=1``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from magnipath.cohort._inputs import CohortError
from magnipath.device import machine_cores

ENV_SCHEDULER = "MAGNIPATH_SCHEDULER"
"""Environment variable naming an existing scheduler (``tcp://HOST:PORT``)."""

ALLOWED_FAILURES = 3
"""Times a task may be lost with its worker (killed, out of memory) before it fails."""


def parse_gpus(text: str | Sequence[int] | None) -> list[int]:
    """``"all"`` (every visible CUDA device), ``"0,1"`` or a list -> GPU indices."""
    if text is None or text == "" or text == []:
        return []
    if isinstance(text, str) and text.strip().lower() == "all":
        try:
            import torch

            n = torch.cuda.device_count()
        except Exception:  # noqa: BLE001 - no usable CUDA: say so below
            n = 0
        if n == 0:
            raise CohortError("--gpus all: no CUDA GPU is visible on this machine; run without "
                              "--gpus (CPU workers) or check CUDA_VISIBLE_DEVICES and drivers")
        return list(range(n))
    try:
        ids = [int(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise CohortError(f"--gpus {text!r}: give 'all' or GPU indices such as 0,1") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise CohortError(f"--gpus {text!r}: give 'all' or distinct GPU indices such as 0,1")
    return ids


@dataclass(frozen=True)
class ClusterPlan:
    """How the embedded cluster is sized (or that an existing one is used).

    Attributes
    ----------
    address : str or None
        Scheduler of an existing cluster; None: embedded.
    workers : int
        Worker processes of the embedded cluster.
    torch_threads : int or None
        Torch threads per worker (None: leave the worker's default).
    gpus : tuple of int
        GPU of each embedded worker (empty: CPU workers); with an address, a
        non-empty tuple means tasks that need a GPU ask for resource ``GPU=1``.
    """

    address: str | None
    workers: int
    torch_threads: int | None
    gpus: tuple[int, ...] = ()

    @property
    def uses_gpu(self) -> bool:
        """Tasks that need a GPU ask for worker resource ``GPU=1``."""
        return bool(self.gpus)

    def describe(self) -> dict:
        """JSON-ready description for the report."""
        if self.address:
            return {"scheduler": self.address, "gpu_tasks": self.uses_gpu}
        return {"scheduler": "embedded", "workers": self.workers,
                "torch_threads_per_worker": self.torch_threads, "gpus": list(self.gpus)}


def plan_cluster(n_tasks: int, *, scheduler: str | None = None, workers: int | None = None,
                 gpus: str | Sequence[int] | None = None,
                 cores: int | None = None) -> ClusterPlan:
    """Size the cluster for ``n_tasks`` slides (see the module docstring).

    ``scheduler`` (or ``$MAGNIPATH_SCHEDULER``) selects an existing cluster.
    """
    if workers is not None and workers < 1:
        raise CohortError(f"--workers {workers}: give a whole number >= 1")
    address = scheduler or os.environ.get(ENV_SCHEDULER) or None
    if address:  # the cluster's workers have the GPUs, not this client: nothing to count here
        ids = (tuple(parse_gpus(gpus)) if gpus and not (isinstance(gpus, str)
                                                        and gpus.strip().lower() == "all")
               else ((0,) if gpus else ()))
        return ClusterPlan(address=address, workers=0, torch_threads=None, gpus=ids)
    ids = tuple(parse_gpus(gpus))
    cores = cores or machine_cores()
    if ids:
        n = len(ids) if workers is None else min(workers, len(ids))
        ids = ids[:n]
    else:
        n = workers or cores
    n = max(1, min(n, max(1, n_tasks)))
    return ClusterPlan(address=None, workers=n, torch_threads=max(1, cores // n), gpus=ids)


def _embedded(plan: ClusterPlan, dashboard: bool):
    import dask
    from distributed import Nanny, Scheduler, SpecCluster

    try:
        import psutil

        memory = int(psutil.virtual_memory().total * 0.9 / plan.workers)
    except Exception:  # noqa: BLE001 - no psutil: dask's own default
        memory = "auto"
    specs = {}
    for i in range(plan.workers):
        env = {"OMP_NUM_THREADS": str(plan.torch_threads),
               "MKL_NUM_THREADS": str(plan.torch_threads)}
        options: dict = {"nthreads": 1, "memory_limit": memory, "env": env,
                         "silence_logs": logging.CRITICAL, "dashboard": dashboard}
        if plan.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(plan.gpus[i])
            options["resources"] = {"GPU": 1}
        specs[f"magnipath-{i}"] = {"cls": Nanny, "options": options}
    scheduler = {"cls": Scheduler,
                 "options": {"host": "127.0.0.1", "dashboard": dashboard,
                             "dashboard_address": ":0", "allowed_failures": ALLOWED_FAILURES}}
    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.ERROR,
                           name="magnipath-cohort")


@contextlib.contextmanager
def cohort_client(plan: ClusterPlan, *, client=None, dashboard: bool = False,
                  connect_timeout: float = 5.0) -> Iterator:
    """A ``distributed.Client`` for the run: the one given, an existing cluster's, or embedded.

    Raises
    ------
    CohortError
        The scheduler address cannot be reached within ``connect_timeout`` s.
    """
    if client is not None:
        yield client
        return
    from distributed import Client

    if plan.address:
        try:
            c = Client(plan.address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise CohortError(
                f"cannot reach the dask scheduler at {plan.address} within "
                f"{connect_timeout:g} s ({type(e).__name__}); start it ('dask scheduler', or a "
                f"dask-jobqueue cluster) and give its address, e.g. tcp://HOST:8786, with "
                f"--scheduler or ${ENV_SCHEDULER}; nothing was written") from None
        try:
            yield c
        finally:
            c.close()
        return
    cluster = _embedded(plan, dashboard)
    try:
        with Client(cluster, set_as_default=False) as c:
            yield c
    finally:
        cluster.close()
