"""The out-of-core prediction store: a zarr v3 group written chunk by chunk.

Layout (``OUT/<slide stem>.zarr``)::

    labels/0, labels/1, ...         uint8 (y, x) label maps, level k at 2**k x the target mpp
    probabilities/0 (optional)      uint8 (class, y, x), probability * 255
    progress.json                   finished chunks (resume), rewritten atomically
    zarr.json attributes            "magnipath": run description, "complete": bool
    labels/zarr.json attributes     "multiscales": OME-NGFF-style pyramid (µm, level-0 origin)

Label pixel ``(r, c)`` of level ``k`` covers level-0
``[x0 + c*d*2**k, ...) x [y0 + r*d*2**k, ...)`` with ``(x0, y0) = origin`` and
``d = downsample`` from the run description (level ``k > 0`` holds the label of
the top-left level-0 label pixel of each ``2**k`` block: nearest neighbour).

A run is marked complete only after every chunk and every pyramid level is
written; an interrupted run leaves ``complete: false`` and its finished chunks,
and the next run with the same signature (slide, model, region, stride, chunk,
tissue settings) continues from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import zarr

from magnipath._errors import MagnipathError
from magnipath._io import atomic_write_text, discard_stale_temps

PYRAMID_MIN_SIDE = 1024
"""Pyramid levels are added (each halving the previous) while a side exceeds this."""

_SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", ".ndpi", ".mrxs", ".scn",
                   ".bif", ".vms", ".vmu", ".svslide")


class PredictionStoreError(MagnipathError):
    """A prediction store cannot be created, resumed or read."""


def store_path(out_dir: str | Path, slide_path: str | Path) -> Path:
    """``out_dir / "<slide name without its slide suffix>.zarr"``."""
    name = Path(slide_path).name
    for suf in _SLIDE_SUFFIXES:
        if name.lower().endswith(suf) and len(name) > len(suf):
            name = name[: -len(suf)]
            break
    else:
        name = Path(name).stem or name
    return Path(out_dir) / f"{name}.zarr"


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class PredictionStore:
    """Open or create the store of one (slide, model, settings) run.

    Parameters
    ----------
    path : Path
        The ``.zarr`` folder.
    signature : dict
        What identifies the run (slide path and size, model, region, stride,
        chunk, tissue settings). A store with another signature is refused
        unless ``overwrite``.
    out_shape : (int, int)
        Label map ``(height, width)`` in output pixels.
    n_classes : int
        Number of model classes (probability channels).
    chunk : int
        Chunk side in output pixels.
    fill : int
        Label of pixels no window predicted (outside the tissue mask).
    probabilities : bool
        Also store per-class probabilities as uint8.
    overwrite : bool
        Replace a store that holds another run.
    meta : dict, optional
        Run description saved in the group attributes (``target_mpp``, ``origin``,
        ``downsample``, ``class_map``...).

    Raises
    ------
    PredictionStoreError
        The folder holds another run (the message lists what differs) or
        something that is not a prediction store.
    """

    def __init__(self, path: Path, *, signature: dict, out_shape: tuple[int, int],
                 n_classes: int, chunk: int, fill: int, probabilities: bool,
                 overwrite: bool = False, meta: dict | None = None) -> None:
        self.path = Path(path)
        self.signature = json.loads(json.dumps(signature))  # as it reads back from JSON
        self.done: set[tuple[int, int]] = set()
        existing = self._existing_signature(overwrite)
        if existing is not None and existing != self.signature:
            if not overwrite:
                if existing.get("slide") != self.signature.get("slide"):
                    what = f"the prediction of another slide ({existing.get('slide')})"
                else:
                    what = ("a prediction of this slide made with other settings ("
                            + "; ".join(_differences(existing, self.signature)) + ")")
                raise PredictionStoreError(
                    f"{self.path} already holds {what}; choose another output folder "
                    "(--out) or pass --overwrite (overwrite=True) to replace it")
            existing = None
        if existing is None:
            if self.path.exists():
                shutil.rmtree(self.path)
            root = zarr.open_group(self.path, mode="w")
            root.attrs["magnipath"] = {"signature": self.signature, "complete": False,
                                       "fill": int(fill), **(meta or {})}
            labels = root.require_group("labels")
            labels.create_array("0", shape=tuple(out_shape), chunks=(chunk, chunk),
                                dtype="uint8", fill_value=int(fill))
            if probabilities:
                probs = root.require_group("probabilities")
                probs.create_array("0", shape=(n_classes, *out_shape),
                                   chunks=(n_classes, chunk, chunk), dtype="uint8",
                                   fill_value=0)
        else:
            self.done = self._read_progress()
        self.root = zarr.open_group(self.path, mode="r+")
        self.labels = self.root["labels/0"]
        self.probabilities = self.root["probabilities/0"] if "probabilities" in self.root else None
        if probabilities and self.probabilities is None:
            raise PredictionStoreError(
                f"{self.path}: the earlier run stored no probabilities; pass --overwrite "
                "(overwrite=True) to start again with them")
        if tuple(self.labels.shape) != tuple(out_shape) or self.labels.chunks[0] != chunk:
            raise PredictionStoreError(
                f"{self.path}: its label map is {self.labels.shape} in chunks of "
                f"{self.labels.chunks[0]}, this run needs {tuple(out_shape)} in chunks of "
                f"{chunk}; pass --overwrite to start again")

    # -- state ------------------------------------------------------------------------
    def _existing_signature(self, overwrite: bool) -> dict | None:
        if not self.path.exists():
            return None
        if not (self.path / "zarr.json").exists():
            if self.path.is_dir() and not any(self.path.iterdir()):
                return None
            if overwrite:
                return None
            raise PredictionStoreError(
                f"{self.path} exists but is not a MagniPath prediction store; choose another "
                "output folder or pass --overwrite to replace it")
        try:
            attrs = zarr.open_group(self.path, mode="r").attrs.asdict()
            return dict(attrs["magnipath"]["signature"])
        except Exception as e:
            if overwrite:
                return None
            raise PredictionStoreError(
                f"{self.path} exists but is not a MagniPath prediction store ({e}); choose "
                "another output folder or pass --overwrite to replace it") from e

    def _read_progress(self) -> set[tuple[int, int]]:
        p = self.path / "progress.json"
        discard_stale_temps(p)  # a run killed while recording its progress (one writer per store)
        if not p.exists():
            return set()
        try:
            return {(int(c[0]), int(c[1])) for c in json.loads(p.read_text())["done"]}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return set()  # unreadable progress: redo every chunk (the labels are overwritten)

    @property
    def complete(self) -> bool:
        """Whether a run finished every chunk and the pyramid."""
        return bool(self.root.attrs["magnipath"].get("complete", False))

    # -- writing ------------------------------------------------------------------------
    def write_chunk(self, cy: int, cx: int, extent: tuple[int, int, int, int],
                    labels: np.ndarray, probs: np.ndarray | None) -> None:
        """Write one finished chunk (``extent``: output-pixel row0, row1, col0, col1), record it."""
        r0, r1, c0, c1 = extent
        self.labels[r0:r1, c0:c1] = labels
        if self.probabilities is not None and probs is not None:
            self.probabilities[:, r0:r1, c0:c1] = probs
        self.done.add((int(cy), int(cx)))
        atomic_write_text(self.path / "progress.json", json.dumps({"done": sorted(self.done)}))

    def finish(self, mpp: float, extra: dict | None = None, *,
               origin_um: tuple[float, float] = (0.0, 0.0)) -> None:
        """Build the label pyramid (nearest neighbour), describe it, mark the run complete.

        Parameters
        ----------
        mpp : float
            µm per label pixel of level 0.
        extra : dict, optional
            Added to the run description (counts, timings).
        origin_um : (float, float)
            Level-0 ``(y, x)`` position of the label map's corner in µm (the
            multiscales translation).
        """
        labels = self.root["labels"]
        level, k = self.labels, 0
        translation = {"type": "translation", "translation": [float(v) for v in origin_um]}
        datasets = [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [mpp, mpp]}, translation]}]
        while max(level.shape) > PYRAMID_MIN_SIDE:
            k += 1
            shape = ((level.shape[0] + 1) // 2, (level.shape[1] + 1) // 2)
            nxt = labels.create_array(str(k), shape=shape, chunks=level.chunks, dtype="uint8",
                                      fill_value=level.fill_value, overwrite=True)
            step = level.chunks[0] * 2
            for r in range(0, level.shape[0], step):
                for c in range(0, level.shape[1], step):
                    block = level[r:r + step, c:c + step][::2, ::2]
                    nxt[r // 2:r // 2 + block.shape[0], c // 2:c // 2 + block.shape[1]] = block
            datasets.append({"path": str(k), "coordinateTransformations": [
                {"type": "scale", "scale": [mpp * 2**k, mpp * 2**k]}, translation]})
            level = nxt
        labels.attrs["multiscales"] = [{
            "version": "0.4", "name": "labels",
            "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                     {"name": "x", "type": "space", "unit": "micrometer"}],
            "datasets": datasets}]
        meta = dict(self.root.attrs["magnipath"])
        meta.update(extra or {})
        meta["complete"] = True
        meta["levels"] = len(datasets)
        self.root.attrs["magnipath"] = meta


def open_prediction(path: str | Path) -> tuple[zarr.Group, dict]:
    """Open a finished prediction store read-only.

    Parameters
    ----------
    path : path
        The ``.zarr`` folder written by :func:`magnipath.infer.infer_slide`.

    Returns
    -------
    (zarr.Group, dict)
        The group (``labels/0`` ``(y, x)`` uint8 at ``target_mpp``, optional
        ``probabilities/0`` ``(class, y, x)`` uint8) and the run description:
        ``origin`` (level-0 x, y of label pixel (0, 0)'s corner), ``downsample``
        (level-0 px per label px), ``target_mpp``, ``class_map``, ``fill``,
        ``signature`` (incl. ``slide_mpp``), ``seconds``...

    Raises
    ------
    PredictionStoreError
        If the folder is not a MagniPath prediction or its run did not complete.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise PredictionStoreError(f"{path} is not a MagniPath prediction store (no zarr.json); "
                                   "give the '.zarr' folder written by 'magnipath infer'")
    try:
        root = zarr.open_group(path, mode="r")
        meta = dict(root.attrs["magnipath"])
        _ = root["labels/0"]  # must exist
    except Exception as e:
        raise PredictionStoreError(f"{path} is not a MagniPath prediction store ({e}); give "
                                   "the '.zarr' folder written by 'magnipath infer'") from e
    if not meta.get("complete"):
        raise PredictionStoreError(
            f"{path}: the inference run did not finish; run 'magnipath infer' again with the "
            "same slide, model and --out to complete it")
    return root, meta
