"""Shared helpers of the benchmark scripts: environment, peak RSS, JSON lines.

Every benchmark prints one JSON line on stdout and, with ``--jsonl FILE``,
appends it to FILE; ``summarise.py`` turns the lines into the tables of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil


def env_info() -> dict:
    """Machine and library versions, to record beside every figure."""
    info = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host_cpus": os.cpu_count(),
        "cpu": _cpu_name(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
    for mod in ("magnipath", "torch", "numpy", "tifffile", "zarr", "shapely"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing library is recorded as such
            info[mod] = None
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakSampler:
    """Sample RSS in a thread to find the peak within a window (ru_maxrss is process-wide)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        p = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, p.memory_info().rss / 2**20)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = rss_mb()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())


def emit(record: dict, jsonl: str | None) -> None:
    """Print ``record`` as one JSON line; append it to ``jsonl`` when given."""
    record.setdefault("env", env_info())
    line = json.dumps(record)
    print(line, flush=True)
    if jsonl:
        Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
        with open(jsonl, "a") as f:
            f.write(line + "\n")


def make_tiles(work: Path, train_slides: list, magnification: float, tile: int, *,
               glass_unlabelled: bool = False, name: str = "dataset") -> Path:
    """The DMMN tile dataset of the training slides, the last one for validation."""
    from magnipath.geometry import TileGeometry
    from magnipath.synth import SYNTH_CLASSES
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset

    folder = work / name
    if (folder / "manifest.json").is_file():
        return folder
    n = len(train_slides)
    sources = [SlideSource(path=s.slide, annotations=s.partial, slide_id=s.slide.stem,
                           group=s.slide.stem) for s in train_slides]
    make_dataset(sources, folder, class_map=SYNTH_CLASSES,
                 config=TilingConfig(geometry=TileGeometry.dmmn(mpp=10.0 / magnification,
                                                                size=tile),
                                     min_tissue=0.05, min_labelled=0.01,
                                     glass_unlabelled=glass_unlabelled,
                                     split=((n - 1) / n, 1 / n, 0.0), seed=0))
    return folder
