"""The out-of-core prediction store: a zarr v3 group written chunk by chunk.

Layout (``OUT/<slide stem>.zarr``)::

    labels/0, labels/1, ...         uint8 (y, x) label maps, level k at 2**k x the target mpp
    probabilities/0 (optional)      uint8 (class, y, x), probability * 255
    progress.json                   finished chunks (resume), rewritten atomically
    zarr.json attributes            "magnipath": run description, "complete": bool;
                                    "multiscales": OME-NGFF-style pyramid description (µm)

A run is marked complete only after every chunk and every pyramid level is
written; an interrupted run leaves ``complete: false`` and its finished chunks,
and the next run with the same slide and model continues from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import zarr

from magnipath._errors import MagnipathError
from magnipath._io import atomic_write_text

PYRAMID_MIN_SIDE = 1024


class PredictionStore:
    """Open or create the store of one (slide, model) run.

    Parameters
    ----------
    path : Path
        The ``.zarr`` folder.
    signature : dict
        What identifies the run (slide path and size, model, geometry, region,
        stride). A store with another signature is refused unless ``overwrite``.
    out_shape : (int, int)
        Label map shape in output pixels.
    n_classes : int
    chunk : int
        Chunk side in output pixels.
    fill : int
        Label of pixels no window predicted (outside the tissue mask).
    probabilities : bool
        Also store per-class probabilities as uint8.
    """

    def __init__(self, path: Path, *, signature: dict, out_shape: tuple[int, int],
                 n_classes: int, chunk: int, fill: int, probabilities: bool,
                 overwrite: bool = False, meta: dict | None = None) -> None:
        self.path = Path(path)
        self.signature = signature
        self.done: set[tuple[int, int]] = set()
        existing = self._existing_signature()
        if existing is not None and existing != signature:
            if not overwrite:
                raise MagnipathError(
                    f"{self.path} already holds the result of another run "
                    f"(slide {existing.get('slide')!s}, model {existing.get('model')!s}); "
                    "choose another --out folder or pass --overwrite to replace it")
            shutil.rmtree(self.path)
            existing = None
        if existing is None:
            if self.path.exists():
                shutil.rmtree(self.path)
            root = zarr.open_group(self.path, mode="w")
            root.attrs["magnipath"] = {"signature": signature, "complete": False, **(meta or {})}
            labels = root.require_group("labels")
            labels.create_array("0", shape=out_shape, chunks=(chunk, chunk), dtype="uint8",
                                fill_value=fill)
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
            raise MagnipathError(f"{self.path}: the earlier run stored no probabilities; "
                                 "pass --overwrite to start again with them")

    # -- state ------------------------------------------------------------------------
    def _existing_signature(self) -> dict | None:
        if not (self.path / "zarr.json").exists():
            return None
        try:
            attrs = zarr.open_group(self.path, mode="r").attrs.asdict()
            return attrs["magnipath"]["signature"]
        except Exception as e:
            raise MagnipathError(f"{self.path} exists but is not a MagniPath prediction "
                                 f"store ({e}); choose another --out folder") from e

    def _read_progress(self) -> set[tuple[int, int]]:
        p = self.path / "progress.json"
        if not p.exists():
            return set()
        return {tuple(c) for c in json.loads(p.read_text())["done"]}  # type: ignore[misc]

    @property
    def complete(self) -> bool:
        return bool(self.root.attrs["magnipath"].get("complete", False))

    # -- writing ------------------------------------------------------------------------
    def write_chunk(self, cy: int, cx: int, extent: tuple[int, int, int, int],
                    labels: np.ndarray, probs: np.ndarray | None) -> None:
        """Write one finished chunk and record it as done."""
        r0, r1, c0, c1 = extent
        self.labels[r0:r1, c0:c1] = labels
        if self.probabilities is not None and probs is not None:
            self.probabilities[:, r0:r1, c0:c1] = probs
        self.done.add((cy, cx))
        atomic_write_text(self.path / "progress.json",
                          json.dumps({"done": sorted(self.done)}))

    def finish(self, mpp: float, extra: dict | None = None) -> None:
        """Build the label pyramid (nearest neighbour), describe it, mark complete."""
        labels = self.root["labels"]
        level, k = self.labels, 0
        datasets = [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [mpp, mpp]}]}]
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
                {"type": "scale", "scale": [mpp * 2**k, mpp * 2**k]}]})
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
    """Open a finished prediction store read-only; returns ``(group, run description)``.

    Raises
    ------
    MagnipathError
        If the folder is not a MagniPath prediction or its run did not complete.
    """
    path = Path(path)
    try:
        root = zarr.open_group(path, mode="r")
        meta = root.attrs["magnipath"]
    except Exception as e:
        raise MagnipathError(f"{path} is not a MagniPath prediction store ({e}); give the "
                             "'.zarr' folder written by 'magnipath infer'") from e
    if not meta.get("complete"):
        raise MagnipathError(f"{path}: the inference run did not finish; run 'magnipath infer' "
                             "again with the same slide, model and --out to complete it")
    return root, dict(meta)
