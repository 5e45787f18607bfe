#!/usr/bin/env python
"""Responsiveness of the napari viewer on a 100,000 x 100,000 px slide (issue 6, part 4).

1. **Slide.** Unless ``--slide`` names one, writes a pyramidal tiled RGB BigTIFF
   of ``--size`` px at ``--mpp`` µm/px, fast: a smooth random tissue mask on
   the level-0 tile grid picks each tile from a pool of 16 H&E-like textured
   512 px tiles (or glass); the pool is JPEG-encoded once, so level 0 is
   written as pre-encoded tiles; each lower level (halved until < 1024 px,
   :func:`magnipath.synth.level_shapes`) is the exact 2x2-average mosaic of the
   pool, encoded tile by tile. ``magnipath synth`` writes the same kind of file
   but renders every pixel: 24 s for 16384² and ~1 h for 100,000² here.
   The slide is kept in ``--tmp`` and reused by later runs.
2. **Viewer.** A real napari viewer (run under Xvfb, ``xvfb-run -a``, with
   Qt's default xcb platform: ``QT_QPA_PLATFORM=offscreen`` draws nothing)
   opens the slide with ``viewer.open(path, plugin="napari-magnipath")``. A
   10 ms ``QTimer`` heartbeat runs throughout; a *stall* is the longest gap
   between two beats, i.e. the longest time the event loop could not react.
   Measured: the time of ``viewer.open`` (it blocks the loop) and until the
   first frame is drawn; then per step of a scripted pan/zoom sequence
   (whole slide; zoom 1:16, 1:4 and 1:1 in the middle of the slide with pans
   of half a view; a jump; a drag of 20 small moves at 50 Hz at 1:1), the time
   until the last frame before 0.3 s without drawing (``settle_s``), the
   longest stall and the level napari shows (at zoom 1:n, one screen pixel is
   n level-0 pixels).
3. **Inference.** The Inference dock widget (opened through the manifest) runs
   a random-init DSMN-S2 (width 4, 256 px windows at ``--infer-mpp``) on a
   drawn rectangle of ``--region`` level-0 px in the middle of the slide while
   the view pans every second; recorded: the longest stall while the worker
   runs, split into stalls starting within 0.5 s after a pan (the main thread
   reading and drawing the new view) and the others, the stall when the result
   layers are added (main thread), the run time and the objects.

Peak RSS of the process is recorded (``ru_maxrss``). One JSON line per run
(``_common.emit``); ``--jsonl FILE`` appends it. Example::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/bench_viewer.py \\
        --jsonl benchmarks/results/2026-11-22_viewer.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import PeakSampler, emit, peak_rss_mb, rss_mb

TILE = 512
POOL = 16


# -- the slide -------------------------------------------------------------------------------------
def _pool_tiles(seed: int) -> list[np.ndarray]:
    """Glass (index 0), then ``POOL`` H&E-like tiles: pink stroma, purple nuclei, grain."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    rng = np.random.default_rng(seed)
    glass = np.clip(rng.normal(242, 2, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
    tiles = [glass]
    for _ in range(POOL):
        smooth = gaussian_filter(rng.normal(0, 1, (TILE, TILE)), 8)
        smooth /= smooth.std() + 1e-9
        img = np.array([228, 160, 200], float) + smooth[..., None] * [10, 18, 12]
        seeds = rng.random((TILE, TILE)) > 1 - 600 / TILE**2
        dist = distance_transform_edt(~seeds)
        nuclei = np.clip(7.0 - dist, 0, 1.5) / 1.5  # discs of ~7 px radius, soft edge
        img = img * (1 - nuclei[..., None]) + np.array([95, 60, 150]) * nuclei[..., None]
        img += rng.normal(0, 2.5, img.shape)
        tiles.append(np.clip(img, 0, 255).astype(np.uint8))
    return tiles


def _tile_index(rows: int, cols: int, seed: int) -> np.ndarray:
    """Pool index of every level-0 tile: 0 = glass, else tissue (~45% of the slide)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed + 1)
    field = gaussian_filter(rng.normal(0, 1, (rows, cols)), max(2.0, min(rows, cols) / 12))
    tissue = field > np.quantile(field, 0.55)
    m = max(1, min(rows, cols) // 40)
    tissue[:m], tissue[-m:], tissue[:, :m], tissue[:, -m:] = False, False, False, False
    return np.where(tissue, 1 + rng.integers(0, POOL, (rows, cols)), 0).astype(np.int32)


def _down2(a: np.ndarray) -> np.ndarray:
    from magnipath.synth._writer import downsample2

    return downsample2(a)


def write_fast_slide(path: Path, size: int, mpp: float, *, quality: int = 90,
                     seed: int = 0) -> dict:
    """Write the benchmark slide (see the module docstring); return what was written.

    ``size`` is the level-0 side in pixels; tiles are 512 px JPEG (quality ``quality``).
    """
    import imagecodecs
    import tifffile

    from magnipath._io import atomic_path
    from magnipath.synth import level_shapes

    t0 = time.perf_counter()
    shapes = level_shapes(size, size)
    if len(shapes) > 10:
        raise SystemExit(f"--size {size}: more than 10 levels; use at most ~500,000 px")

    def encode(a: np.ndarray) -> bytes:
        return imagecodecs.jpeg8_encode(a, level=quality, colorspace="RGB",
                                        outcolorspace="YCBCR", subsampling=(2, 2))

    pool = [_pool_tiles(seed)]
    for _ in shapes[1:]:
        pool.append([_down2(p) for p in pool[-1]])
    rows = cols = -(-size // TILE)
    index = _tile_index(rows, cols, seed)
    enc0 = [encode(p) for p in pool[0]]
    desc = (f"MagniPath viewer benchmark slide (procedural tiles, seed {seed})\r\n"
            f"Aperio Image Library v12.0.0 (MagniPath bench_viewer)\r\n"
            f"{size}x{size} [0,0 {size}x{size}] ({TILE}x{TILE}) JPEG/RGB Q={quality}"
            f"|AppMag = {10 / mpp:g}|MPP = {mpp:g}")
    common = dict(photometric="rgb", tile=(TILE, TILE), dtype=np.uint8, metadata=None,
                  resolutionunit="CENTIMETER", compression="jpeg",
                  compressionargs={"level": quality})

    def level_tiles(k: int, shape: tuple[int, int]):
        n, b = 2**k, TILE >> k
        r, c = -(-shape[0] // TILE), -(-shape[1] // TILE)
        padded = np.zeros((r * n, c * n), np.int32)
        h, w = min(rows, r * n), min(cols, c * n)
        padded[:h, :w] = index[:h, :w]
        stack = np.stack(pool[k])
        glass = None
        for ty in range(r):
            for tx in range(c):
                idx = padded[ty * n:(ty + 1) * n, tx * n:(tx + 1) * n]
                if not idx.any():
                    glass = glass or encode(np.ascontiguousarray(
                        stack[idx].transpose(0, 2, 1, 3, 4).reshape(TILE, TILE, 3)))
                    yield glass
                    continue
                yield encode(np.ascontiguousarray(
                    stack[idx].transpose(0, 2, 1, 3, 4).reshape(n * b, n * b, 3)))

    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        tif.write((enc0[i] for i in index.ravel()), shape=(size, size, 3), subfiletype=0,
                  description=desc, resolution=(1e4 / mpp, 1e4 / mpp), **common)
        for k, shape in enumerate(shapes[1:], start=1):
            res = 1e4 / (mpp * 2**k)
            tif.write(level_tiles(k, shape), shape=(*shape, 3), subfiletype=1,
                      resolution=(res, res), **common)
    return {"slide_written_s": round(time.perf_counter() - t0, 1),
            "slide_tissue_fraction": round(float((index > 0).mean()), 3)}


# -- the event-loop probe --------------------------------------------------------------------------
class Probe:
    """A 10 ms heartbeat and a frame log on the Qt main thread (times: ``perf_counter``)."""

    def __init__(self, viewer) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.beats: list[float] = []
        self.draws: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        self.timer.start()
        canvas = viewer.window._qt_viewer.canvas._scene_canvas
        canvas.events.draw.connect(lambda _: self.draws.append(time.perf_counter()))

    def stall_ms(self, t0: float, t1: float) -> float:
        """Longest gap between heartbeats within ``[t0, t1]`` (both ends count as beats)."""
        b = [t0, *(x for x in self.beats if t0 < x < t1), t1]
        return round(1000 * float(np.max(np.diff(b))), 1)

    def wait(self, t0: float, *, quiet: float = 0.3, timeout: float = 120.0,
             until=None) -> float:
        """Run the event loop until ``until()`` and ``quiet`` s without a frame; return the
        time of the last frame after ``t0`` (``t0`` if none)."""
        from qtpy.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        check = QTimer()

        def tick() -> None:
            now = time.perf_counter()
            last = max([t0, *(d for d in self.draws[-50:] if d > t0)])
            done = (until is None or until()) and now - last >= quiet and now - t0 >= quiet
            if done or now - t0 > timeout:
                loop.quit()

        check.timeout.connect(tick)
        check.start(20)
        loop.exec_()
        check.stop()
        return max([t0, *(d for d in self.draws if d > t0)])

    def step(self, name: str, action, layer, **wait) -> dict:
        """Do ``action()``, wait for the frames, and say how long the loop was busy."""
        t0 = time.perf_counter()
        action()
        t_call = time.perf_counter()
        last = self.wait(t0, **wait)
        t_end = time.perf_counter()
        frames = [d for d in self.draws if t0 < d <= t_end]
        return {"step": name, "call_ms": round(1000 * (t_call - t0), 1),
                "settle_s": round(last - t0, 3), "frames": len(frames),
                "max_stall_ms": self.stall_ms(t0, t_end), "level": int(layer.data_level)}


# -- the viewer session ----------------------------------------------------------------------------
def _pan_zoom(viewer, layer, probe: Probe, size: int, mpp: float) -> list[dict]:
    from magnipath._napari._regions import camera, canvas_size

    cam = camera(viewer)
    h, w = canvas_size(viewer)
    mid = size * mpp / 2  # world units: µm

    def goto(level: float, dy: float = 0.0, dx: float = 0.0, ref=None):
        def act() -> None:
            z = 1 / (mpp * 2**level)
            cy, cx = (mid, mid) if ref is None else ref()
            cam.center = (cy + dy * h / z, cx + dx * w / z)
            cam.zoom = z
        return act

    here = lambda: tuple(cam.center)[-2:]  # noqa: E731 - a tiny reader of the camera
    steps = [("whole slide", viewer.reset_view)]
    for lev in (4, 2):  # screen px = 2**lev level-0 px
        steps.append((f"zoom 1:{2**lev}: to the middle", goto(lev)))
        steps += [(f"zoom 1:{2**lev}: pan half a view", goto(lev, 0, 0.5, here))
                  for _ in range(3)]
    steps.append(("zoom 1:1: to the middle", goto(0)))
    for dy, dx in ((0, 0.5), (0, 0.5), (0.5, 0), (0, -0.5), (0, -0.5), (-0.5, 0)):
        steps.append(("zoom 1:1: pan half a view", goto(0, dy, dx, here)))
    jump = size * mpp / 4 / (w * mpp)  # a quarter of the slide to the right, in views
    steps += [("zoom 1:1: jump a quarter slide away", goto(0, 0, jump, here)),
              ("zoom 2:1 (level 0 magnified)", goto(-1, 0, 0, here)),
              ("zoom 1:2", goto(1, 0, 0, here)),
              ("whole slide again", viewer.reset_view)]
    out = [probe.step(name, act, layer) for name, act in steps]
    out.append(_drag(viewer, layer, probe, mpp))
    return out


def _drag(viewer, layer, probe: Probe, mpp: float) -> dict:
    """20 camera moves of 1/10 view at 50 Hz at level 0 (a mouse drag), then settle."""
    from qtpy.QtCore import QTimer

    from magnipath._napari._regions import camera, canvas_size

    cam = camera(viewer)
    _, w = canvas_size(viewer)
    cam.zoom = 1 / mpp
    probe.wait(time.perf_counter())
    moves = {"n": 0}
    timer = QTimer()

    def move() -> None:
        cy, cx = tuple(cam.center)[-2:]
        cam.center = (cy, cx + w * mpp / 10)
        moves["n"] += 1
        if moves["n"] >= 20:
            timer.stop()

    timer.timeout.connect(move)
    rec = probe.step("zoom 1:1: drag 20 x 1/10 view at 50 Hz", lambda: timer.start(20), layer,
                     until=lambda: moves["n"] >= 20)
    rec["moves"] = moves["n"]
    return rec


# -- inference through the dock widget -------------------------------------------------------------
def _tiny_model(folder: Path, mpp: float, tile: int) -> Path:
    """A random-init DSMN-S2 (width 4) model folder: 3 classes, one ``tile`` px input."""
    import torch

    from magnipath.checkpoint import ModelCard, save_checkpoint
    from magnipath.classes import ClassMap
    from magnipath.geometry import TileGeometry
    from magnipath.models import build_model

    torch.manual_seed(0)
    classes = ClassMap.from_names(["Background", "Stroma", "Tumor"])
    net = build_model("dsmn-s2", n_classes=classes.n_classes, base=4)
    card = ModelCard(arch="dsmn-s2", arch_kwargs=dict(net.arch_kwargs),
                     class_map=classes.to_dict(), geometry=TileGeometry.single(mpp, tile).to_dict())
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best.pt", net, card)
    card.save_json(folder / "model_card.json")
    return folder


def _inference(viewer, layer, probe: Probe, args, tmp: Path) -> dict:
    from qtpy.QtCore import QTimer

    from magnipath._napari._frames import vector_frame
    from magnipath._napari._regions import camera, canvas_size

    model = _tiny_model(tmp / "model", args.infer_mpp, args.infer_tile)
    _, widget = viewer.window.add_plugin_dock_widget("napari-magnipath", "Inference")
    x0 = y0 = (args.size - args.region) // 2
    x1 = y1 = x0 + args.region
    rect = viewer.add_shapes([np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float)],
                             shape_type="rectangle", name="region", face_color="transparent",
                             **vector_frame(args.mpp))
    widget.image.value = layer
    widget.model.value = model
    widget.region.value = "drawn shapes"
    widget.shapes.value = rect
    widget.device.value = "cpu"
    widget.batch_size.value = args.batch_size
    widget.output.value = tmp / "predictions"
    widget.overwrite.value = True
    viewer.layers.selection.active = layer
    cam = camera(viewer)
    _, w = canvas_size(viewer)
    cam.center, cam.zoom = (args.size * args.mpp / 2,) * 2, 1 / (args.mpp * 4)
    probe.wait(time.perf_counter())
    marks: dict[str, float] = {}
    viewer.layers.events.inserting.connect(lambda _: marks.setdefault(
        "first_layer_add", time.perf_counter()))
    pans: list[float] = []
    timer = QTimer()

    def pan() -> None:  # the user keeps looking around while the model runs
        cy, cx = tuple(cam.center)[-2:]
        cam.center = (cy, cx + (1 if len(pans) % 4 < 2 else -1) * w * args.mpp)
        pans.append(time.perf_counter())

    timer.timeout.connect(pan)
    with PeakSampler() as ps:
        t0 = time.perf_counter()
        widget.run_button.native.click()
        run = widget.current
        timer.start(1000)
        probe.wait(t0, until=lambda: run.done or "first_layer_add" in marks, timeout=3600)
        timer.stop()
        t_add = marks.get("first_layer_add", time.perf_counter())
        last = probe.wait(t_add, until=lambda: run.done, timeout=600)
        t_end = time.perf_counter()
    if run.error is not None:
        raise SystemExit(f"inference failed: {run.error!r}")
    res = run.result["result"]
    return {"region_l0": [x0, y0, args.region, args.region], "infer_mpp": args.infer_mpp,
            "infer_tile": args.infer_tile, "batch": args.batch_size, "device": "cpu",
            "windows_run": res.windows_run, "windows_grid": res.n_windows,
            "objects": len(run.result["objects"]), "label_shape": list(res.out_shape),
            "pans_during_run": len(pans),
            "worker_s": round(t_add - t0, 1),
            "max_stall_while_worker_runs_ms": probe.stall_ms(t0, t_add),
            "stalls_over_200ms_while_worker_runs": _count_stalls(probe, t0, t_add, 0.2),
            **_pan_split(probe, t0, t_add, pans),
            "add_layers_s": round(last - t_add, 3),
            "max_stall_adding_layers_ms": probe.stall_ms(t_add, t_end),
            "run_peak_rss_mb": round(ps.peak, 1)}


def _pan_split(probe: Probe, t0: float, t1: float, pans: list[float]) -> dict:
    """Longest stalls beginning within 0.5 s after a pan (its reads and frames) and elsewhere."""
    b = np.array([t0, *(x for x in probe.beats if t0 < x < t1), t1])
    gaps, starts = np.diff(b), b[:-1]
    near = np.zeros(len(gaps), bool)
    for p in pans:
        near |= (starts >= p - 0.02) & (starts < p + 0.5)
    ms = lambda g: round(1000 * float(g.max()), 1) if len(g) else 0.0  # noqa: E731
    return {"max_stall_after_pans_ms": ms(gaps[near]),
            "max_stall_between_pans_ms": ms(gaps[~near])}


def _count_stalls(probe: Probe, t0: float, t1: float, limit: float) -> int:
    b = [t0, *(x for x in probe.beats if t0 < x < t1), t1]
    return int((np.diff(b) > limit).sum())


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", default=None, help="an existing slide (default: write one)")
    ap.add_argument("--size", type=int, default=100_000, help="side of the written slide, px")
    ap.add_argument("--mpp", type=float, default=0.25, help="its level-0 µm/px")
    ap.add_argument("--tmp", default=os.path.join(tempfile.gettempdir(),
                                                  "magnipath-bench-viewer"),
                    help="folder of the written slide (kept and reused) and of the run")
    ap.add_argument("--window", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"),
                    help="viewer window size, screen px")
    ap.add_argument("--region", type=int, default=24_000,
                    help="side of the inferred square in the middle, level-0 px (0: skip)")
    ap.add_argument("--infer-mpp", type=float, default=0.5, help="model µm/px (0.5 = 20x)")
    ap.add_argument("--infer-tile", type=int, default=256, help="model window side, px")
    ap.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    ap.add_argument("--no-pan-zoom", action="store_true", help="skip the pan/zoom sequence")
    ap.add_argument("--label", default="", help="free text stored with the record")
    ap.add_argument("--jsonl", default=None, help="append the JSON line to this file")
    args = ap.parse_args()
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        raise SystemExit("QT_QPA_PLATFORM=offscreen draws nothing: run under xvfb-run instead")
    import torch

    torch.set_num_threads(1)
    tmp = Path(args.tmp)
    rec: dict = {"bench": "viewer", "label": args.label,
                 "load_avg_at_start": [round(v, 2) for v in os.getloadavg()]}
    if args.slide:
        slide = Path(args.slide)
    else:
        slide = tmp / f"viewer{args.size}_mpp{args.mpp:g}.tif"
        if not slide.exists():
            rec.update(write_fast_slide(slide, args.size, args.mpp))
    rec["slide"] = str(slide)
    rec["slide_gb"] = round(slide.stat().st_size / 1e9, 2)
    import napari

    rec["napari"] = napari.__version__
    rec["rss_after_imports_mb"] = round(rss_mb(), 1)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*args.window)
    probe = Probe(viewer)
    probe.wait(time.perf_counter(), quiet=0.5)
    t0 = time.perf_counter()
    (layer,) = viewer.open(str(slide), plugin="napari-magnipath")
    t_added = time.perf_counter()
    last = probe.wait(t_added)
    first = min((d for d in probe.draws if d > t0), default=float("nan"))
    meta = layer.metadata["magnipath"]
    size, mpp = layer.data[0].shape[1], meta["mpp"] or 1.0
    from magnipath._napari._regions import canvas_size

    rec.update({"slide_dims_l0": [size, layer.data[0].shape[0]], "mpp": mpp,
                "levels": len(layer.data), "canvas_hw": list(canvas_size(viewer)),
                "open": {"open_call_s": round(t_added - t0, 3),
                         "first_frame_s": round(first - t0, 3),
                         "settled_s": round(last - t0, 3),
                         "max_stall_ms": probe.stall_ms(t0, time.perf_counter())},
                "rss_after_open_mb": round(rss_mb(), 1)})
    args.size, args.mpp = size, mpp
    if not args.no_pan_zoom:
        with PeakSampler() as ps:
            rec["steps"] = _pan_zoom(viewer, layer, probe, size, mpp)
        rec["pan_zoom_peak_rss_mb"] = round(ps.peak, 1)
        rec["pan_zoom_max_stall_ms"] = max(s["max_stall_ms"] for s in rec["steps"])
        rec["pan_zoom_max_settle_s"] = max(s["settle_s"] for s in rec["steps"])
    if args.region > 0:
        rec["inference"] = _inference(viewer, layer, probe, args, tmp / "run")
    rec["peak_rss_mb"] = round(peak_rss_mb(), 1)
    rec["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    viewer.close()
    emit(rec, args.jsonl)


if __name__ == "__main__":
    main()
