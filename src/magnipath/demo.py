"""The end-to-end demo pipeline on built-in synthetic slides (``magnipath demo``).

Slides an earlier run made with the same settings are reused (they are a
deterministic function of them: ``slides/NAME.synth.json`` records them), so a
rerun, e.g. with a longer ``--train-seconds``, starts at tiling. Stages, each a
plain call of the public API, so the demo doubles as a worked
example: synthesise training and test slides with ground truth -> tile the
training slides (partial DMMN-style annotations, concentric context inputs) ->
train a multi-magnification model on the CPU -> infer the held-out slide ->
evaluate against its exhaustive ground truth -> write the predicted objects as
QuPath GeoJSON -> and, where QuPath is installed, a QuPath project holding the
slide, its ground truth and the predictions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from magnipath._errors import MagnipathError
from magnipath._io import atomic_write_text
from magnipath.progress import CancelCallback, ProgressCallback, report


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of the demo; the defaults finish in well under 15 minutes on 2 CPU cores.

    Attributes
    ----------
    out : Path
        Folder for everything the demo writes.
    size : int
        Side of each synthetic slide, level-0 pixels at ``mpp`` µm/px.
    mpp : float
        Level-0 resolution of the synthetic slides (0.25 = 40x).
    n_train : int
        Training slides (one more is made for testing).
    magnification : float
        Target magnification of the model (context inputs at 1/2 and 1/4 of it).
    tile : int
        Target tile size, pixels at the target magnification.
    stride : int or None
        Step of the inference windows, target pixels; None: half the tile, so that windows
        overlap and are blended, and no pixel is predicted only at a window's edge (the
        network sees less context there; thin structures such as duct walls were cut
        along the window grid without overlap).
    arch : str
        Architecture name (``magnipath.models.list_models()``).
    base, depth, norm
        Width of the first convolution layer, number of poolings and batch
        norm of the DSMN/DMMN models (the paper: 32, 4, no norm; the demo is
        smaller and uses batch norm to learn within minutes on a CPU).
    train_seconds : float
        Training time cap, seconds: a safety net only. Training is a budget of
        ``epochs``; on a normal machine, loaded or with one core, it ends well
        before the cap, so the results do not depend on the machine's speed. When
        the cap does end training, the summary says so
        (``training.stopped_by_time_cap``).
    epochs : int
        Training epochs (the budget).
    batch_size : int
        Samples per optimisation step.
    lr : float
        Peak learning rate (Adam) of the warm-up + cosine schedule.
    warmup : float
        Share of the optimisation steps spent warming up.
    sampling : {"balanced", "uniform"}
        ``balanced``: every class is equally likely to be in a training sample, so
        rare classes (benign epithelium, necrosis, adipose) are learnt from the
        first epochs (:class:`magnipath.train.TrainConfig`).
    amp : bool
        Mixed precision where the machine computes it natively (CUDA; CPUs with
        AMX / AVX512-BF16: bfloat16); float32 elsewhere, silently.
    seed : int
    """

    out: Path = Path("magnipath-demo")
    size: int = 8192
    mpp: float = 0.25
    n_train: int = 4
    magnification: float = 5.0
    tile: int = 64
    stride: int | None = None
    arch: str = "dmmn-m3"
    base: int = 8
    depth: int = 3
    norm: bool = True
    train_seconds: float = 900.0
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    warmup: float = 0.1
    sampling: str = "balanced"
    amp: bool = True
    seed: int = 0


PREDICTED_CLASSES = ("TLS", "Carcinoma")


def run_demo(config: DemoConfig | None = None, *, progress: ProgressCallback | None = None,
             cancel: CancelCallback | None = None) -> dict:
    """Run the whole pipeline; return a JSON-ready summary (paths, metrics, timings)."""
    from magnipath.device import amp_dtype, machine_cores, resolve_device
    from magnipath.evaluate import evaluate_prediction
    from magnipath.geometry import TileGeometry
    from magnipath.infer import InferConfig, infer_slide, prediction_objects
    from magnipath.synth import SYNTH_CLASSES, SynthConfig, synthesize
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset
    from magnipath.train import TrainConfig, train
    from qupath_bridge.geojson import write_geojson

    cfg = config or DemoConfig()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise MagnipathError(f"demo output {out} is a file, not a folder: the demo writes its "
                             "slides, dataset, model and predictions into a folder; give another "
                             "--out (a folder that does not exist yet, or an earlier demo's)")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summary: dict = {"config": {k: str(v) if isinstance(v, Path) else v
                                for k, v in asdict(cfg).items()}}

    def stage(name: str, n: int, total: int) -> float:
        report(progress, "demo", n, total, step=name)
        return time.perf_counter()

    # 1. synthetic slides with ground truth (made side by side on machines with 2+ cores:
    # rendering and JPEG encoding release the GIL; each slide is a function of its seed)
    t = stage("synth", 0, 6)
    names = [f"train_{i}" if i < cfg.n_train else "test_0" for i in range(cfg.n_train + 1)]
    scfgs = [SynthConfig(width=cfg.size, height=cfg.size, mpp=cfg.mpp, seed=cfg.seed * 100 + i)
             for i in range(cfg.n_train + 1)]
    slides: list = [_reuse_slide(out / "slides" / f"{n}.tif", c)
                    for n, c in zip(names, scfgs, strict=True)]
    reused = sum(r is not None for r in slides)
    todo = [i for i, r in enumerate(slides) if r is None]
    threads = min(len(todo), machine_cores())

    def make(i: int):
        res = synthesize(out / "slides" / f"{names[i]}.tif", scfgs[i],
                         progress=progress if threads <= 1 else None, cancel=cancel)
        atomic_write_text(_stamp(res.slide), json.dumps(_synth_key(scfgs[i])))
        return res

    if threads <= 1:
        for i in todo:
            slides[i] = make(i)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            for k, (i, res) in enumerate(zip(todo, pool.map(make, todo), strict=True)):
                slides[i] = res
                report(progress, "synth", k + 1, len(todo), slide=names[i])
    timings["synth_s"] = time.perf_counter() - t
    train_slides, test = slides[:-1], slides[-1]
    summary["slides"] = {"train": [str(s.slide) for s in train_slides], "test": str(test.slide),
                         "reused": reused}

    # 2. tiles with DMMN-style concentric context, from partial annotations
    t = stage("tile", 1, 6)
    target_mpp = 10.0 / cfg.magnification
    geometry = TileGeometry.dmmn(mpp=target_mpp, size=cfg.tile)
    n_val = 1 if cfg.n_train > 1 else 0
    sources = [SlideSource(path=s.slide, annotations=s.partial, slide_id=s.slide.stem,
                           group=s.slide.stem) for s in train_slides]
    tiling = make_dataset(
        sources, out / "dataset", class_map=SYNTH_CLASSES,
        config=TilingConfig(geometry=geometry, min_tissue=0.05, min_labelled=0.01,
                            glass_unlabelled=True,
                            split=((cfg.n_train - n_val) / cfg.n_train,
                                   n_val / cfg.n_train, 0.0), seed=cfg.seed),
        progress=progress, cancel=cancel)
    timings["tile_s"] = time.perf_counter() - t
    summary["dataset"] = {"path": str(out / "dataset"), "n_tiles": tiling.get("n_tiles"),
                          "tiles_per_s": tiling.get("tiles_per_s")}

    # 3. train a multi-magnification model on the CPU within a time budget
    t = stage("train", 2, 6)
    arch_kwargs = ({} if cfg.arch.startswith("unetpp") else
                   {"base": cfg.base, "depth": cfg.depth, "norm": cfg.norm})
    amp = cfg.amp and amp_dtype(resolve_device("auto"), True) is not None
    tcfg = TrainConfig.preset("demo", arch=cfg.arch, arch_kwargs=arch_kwargs,
                              epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                              warmup=cfg.warmup, sampling=cfg.sampling,
                              time_budget_s=cfg.train_seconds, seed=cfg.seed, device="auto",
                              amp=amp)
    trained = train(out / "dataset", out / "model", tcfg, overwrite=True, progress=progress,
                    cancel=cancel)
    timings["train_s"] = time.perf_counter() - t
    summary["model"] = {"path": str(out / "model"), "arch": cfg.arch,
                        "epochs_done": trained.get("epochs_done"), "best": trained.get("best"),
                        "mixed_precision": amp,
                        "samples_per_s": trained.get("samples_per_s")}
    summary["training"] = training_status(cfg, trained, timings["train_s"])

    # 4. whole-slide inference on the held-out slide
    t = stage("infer", 3, 6)
    res = infer_slide(test.slide, out / "model", out / "predictions",
                      InferConfig(batch_size=16, overwrite=True, amp=cfg.amp,
                                  stride=cfg.stride or max(cfg.tile // 2, 1),
                                  glass_background=True),
                      progress=progress,
                      cancel=cancel)
    timings["infer_s"] = time.perf_counter() - t
    summary["inference"] = {"store": str(res.store), "windows": res.n_windows,
                            "skipped_no_tissue": res.n_skipped,
                            "windows_per_s": round(res.windows_per_s, 2)}

    # 5. evaluation against the exhaustive ground truth
    t = stage("evaluate", 4, 6)
    ev = evaluate_prediction(res.store, test.truth, progress=progress)
    timings["evaluate_s"] = time.perf_counter() - t
    per = ev["slide"]["per_class"]
    summary["metrics"] = {"mean_iou": ev["slide"]["overall"]["mean_iou"],
                          "accuracy": ev["slide"]["overall"]["accuracy"],
                          "iou": {k: v["iou"] for k, v in per.items()},
                          "tiles": {k: v["iou"] for k, v in ev["tiles"].items()}}

    # 6. predicted objects -> QuPath GeoJSON (and a QuPath project when QuPath exists)
    t = stage("objects", 5, 6)
    objects = prediction_objects(res.store, classes=list(PREDICTED_CLASSES),
                                 min_area_um2=200.0, simplify_um=1.0)
    geojson = write_geojson(objects, out / "predictions" / "test_0.geojson")
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.classification] = counts.get(o.classification, 0) + 1
    summary["objects"] = {"geojson": str(geojson), "counts": counts}
    summary["qupath"] = _qupath_project(out, test, objects)
    timings["objects_s"] = time.perf_counter() - t
    report(progress, "demo", 6, 6, step="done")
    summary["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    summary["timings_s"]["total_s"] = round(sum(timings.values()), 1)
    return summary


def _synth_key(scfg) -> dict:
    return {k: v for k, v in asdict(scfg).items()}


def _stamp(slide: Path) -> Path:
    return slide.with_name(slide.stem + ".synth.json")


def _reuse_slide(path: Path, scfg) -> SimpleNamespace | None:
    """A slide an earlier demo made with the same settings (slides are a deterministic
    function of them), with its GeoJSON files; None when it must be made."""
    from magnipath.synth import sidecar_paths

    truth, partial, mitoses = sidecar_paths(path)
    try:
        same = json.loads(_stamp(path).read_text()) == json.loads(json.dumps(_synth_key(scfg)))
    except (OSError, ValueError):
        return None
    if not same or not all(p.is_file() for p in (path, truth, partial, mitoses)):
        return None
    return SimpleNamespace(slide=path, truth=truth, partial=partial, mitoses=mitoses)


def training_status(cfg: DemoConfig, trained: dict, train_s: float) -> dict:
    """Whether the time cap ended training, and what to rerun with if it did.

    Returns
    -------
    dict
        ``epochs`` (the budget), ``epochs_done``, ``stopped_by_time_cap``, ``train_seconds``
        (the cap, s), ``train_s`` (spent, s), and when the cap was hit ``note`` (the
        sentence the CLI prints) and ``suggested_train_seconds``.
    """
    done = int(trained.get("epochs_done") or 0)
    capped = trained.get("stopped") == "time_budget"
    status = {"epochs": cfg.epochs, "epochs_done": done, "stopped_by_time_cap": capped,
              "train_seconds": cfg.train_seconds, "train_s": round(train_s, 1)}
    if capped:
        per_epoch = train_s / max(done - 0.5, 0.5)  # the last epoch was cut short
        suggest = int(math.ceil(per_epoch * cfg.epochs * 1.3 / 60.0) * 60)
        status["suggested_train_seconds"] = suggest
        status["note"] = (f"training stopped by the time cap after {done} of {cfg.epochs} "
                          f"epochs; results will be lower; rerun with --train-seconds {suggest}")
    return status


def _qupath_project(out: Path, test, objects: list) -> dict:
    """Create a QuPath project with the test slide, its truth and the predictions."""
    from qupath_bridge.project import Project, create_project, qupath_available

    ok, reason = qupath_available()
    if not ok:
        return {"written": False, "reason": reason}
    path = create_project(out / "qupath", [test.slide], [test.truth])
    with Project(path, mode="r+") as proj:
        written = proj.write_predictions(proj.images[0].name, objects, as_type="annotation")
    return {"written": True, "project": str(path), "result": written}
