"""Read tile datasets written by :func:`magnipath.tiling.make_dataset`; assign splits.

The format is specified in ``docs/dataset-format.md``: one folder with
``manifest.json``, ``tiles.jsonl`` and ``tiles.zarr/`` (``images``, ``labels``
and optionally ``points``). Tile boxes are level-0 pixels of their slide.

The manifest is authoritative for the split of every slide: a record's
``split`` in ``tiles.jsonl`` is overridden by its slide's split in the
manifest, so a re-split (:func:`resplit_dataset`) interrupted between its two
atomic file writes never leaves an inconsistent dataset.

Examples
--------
>>> assign_splits(["p1", "p2", "p3", "p1"], (0.7, 0.15, 0.15), seed=0)  # doctest: +SKIP
{'p1': 'train', 'p2': 'val', 'p3': 'test'}
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from magnipath._errors import MagnipathError
from magnipath._io import atomic_write_text
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry

FORMAT = "magnipath-tiles"
"""Value of ``manifest["format"]``."""
VERSION = 1
"""Format version written by this code; readers refuse newer ones."""
SPLITS = ("train", "val", "test")


class DatasetError(MagnipathError):
    """A tile dataset is missing, corrupt, or of an unknown format version."""


# -- splits ---------------------------------------------------------------------------
def _parse_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray([float(v) for v in ratios], dtype=float)
    if r.shape != (3,) or not np.all(np.isfinite(r)) or np.any(r < 0) or r.sum() <= 0:
        raise DatasetError(
            f"split ratios {list(ratios)} are invalid; give three non-negative numbers "
            "for train, val and test, e.g. 70,15,15")
    if r[0] <= 0:
        raise DatasetError(f"split ratios {list(ratios)}: the train share must be positive")
    return r / r.sum()


def split_counts(n_groups: int, ratios: Sequence[float] = (0.7, 0.15, 0.15)) -> tuple[int, ...]:
    """Number of groups in train, val and test for ``n_groups`` groups.

    Largest-remainder rounding of ``ratios * n_groups`` (ties go to train, then
    val), then every split with a positive ratio that got no group takes one
    from the largest split, as long as that leaves it at least one group;
    train is served first, then val, then test. So 1 group -> (1, 0, 0);
    2 groups -> (1, 1, 0); 3 groups at 70:15:15 -> (1, 1, 1).
    """
    r = _parse_ratios(ratios)
    if n_groups <= 0:
        return (0, 0, 0)
    exact = r * n_groups
    counts = np.floor(exact).astype(int)
    rest = n_groups - counts.sum()
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    for i in range(3):
        if r[i] > 0 and counts[i] == 0:
            donor = int(np.argmax(counts))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return tuple(int(c) for c in counts)


def assign_splits(groups: Sequence[str], ratios: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, str]:
    """Assign every group (patient) to ``"train"``, ``"val"`` or ``"test"``.

    A group is never split: all its slides (and tiles) go to one set. The
    ratios apply to the number of distinct groups (not to tiles); see
    :func:`split_counts` for the rounding and for what happens with few
    groups (train always gets at least one; with 1 group val and test are
    empty, with 2 groups test is empty).

    Parameters
    ----------
    groups : sequence of str
        Group ids, repeats allowed (e.g. one entry per slide).
    ratios : (float, float, float)
        Relative shares of train, val and test; normalised to sum to 1
        (``(70, 15, 15)`` works too).
    seed : int
        The assignment is a deterministic function of the set of groups,
        ``ratios`` and ``seed`` (not of the order of ``groups``).

    Returns
    -------
    dict of str -> str
        Group id -> split name.
    """
    unique = sorted({str(g) for g in groups})
    counts = split_counts(len(unique), ratios)
    perm = np.random.default_rng(seed).permutation(len(unique))
    out: dict[str, str] = {}
    pos = 0
    for split, c in zip(SPLITS, counts, strict=True):
        for k in perm[pos:pos + c]:
            out[unique[int(k)]] = split
        pos += c
    return out


# -- reader ---------------------------------------------------------------------------
class TileDataset:
    """A tile dataset opened for reading (arrays are opened lazily, per process).

    Attributes
    ----------
    path : Path
    manifest : dict
        The parsed ``manifest.json``.
    records : list of dict
        One per tile, from ``tiles.jsonl`` (``box`` in level-0 pixels of the slide).
    geometry : TileGeometry
        Target and context inputs; ``images(i)[k]`` is input ``k``.
    class_map : ClassMap
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise DatasetError(
                f"{self.path} is not a tile dataset (no manifest.json); "
                "make one with `magnipath tile`")
        try:
            self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read {mpath}: {e}; re-create the dataset") from e
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(f"{mpath} is not a MagniPath tile dataset manifest")
        if int(self.manifest.get("version", 0)) > VERSION:
            raise DatasetError(
                f"{self.path} has format version {self.manifest.get('version')}, newer than "
                f"this MagniPath reads ({VERSION}); upgrade MagniPath")
        try:
            self.geometry = TileGeometry.from_dict(self.manifest["geometry"])
            self.class_map = ClassMap.from_dict(self.manifest["class_map"])
            self._slide_split = {s["slide_id"]: s["split"] for s in self.manifest["slides"]}
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{mpath} is incomplete ({e!r}); re-create the dataset") from e
        self.records: list[dict[str, Any]] = _read_records(self.path / "tiles.jsonl")
        for r in self.records:
            r["split"] = self._slide_split.get(r["slide_id"], r.get("split"))
        if len(self.records) != int(self.manifest.get("n_tiles", -1)):
            raise DatasetError(
                f"{self.path}: tiles.jsonl has {len(self.records)} tiles but the manifest says "
                f"{self.manifest.get('n_tiles')}; the dataset is damaged, re-create it")
        self._arrays: dict[str, Any] | None = None
        self._pid = -1

    # -- arrays -----------------------------------------------------------------------
    def _array(self, name: str) -> Any:
        if self._arrays is None or self._pid != os.getpid():
            import zarr

            try:
                group = zarr.open_group(self.path / "tiles.zarr", mode="r")
                self._arrays = {k: group[k] for k in ("images", "labels", "points")
                                if k in group}
            except Exception as e:
                raise DatasetError(f"cannot open {self.path / 'tiles.zarr'}: {e}") from e
            self._pid = os.getpid()
        return self._arrays.get(name)

    def __getstate__(self) -> dict[str, Any]:
        # arrays are reopened in the receiving process (DataLoader workers, spawn or fork)
        return {**self.__dict__, "_arrays": None, "_pid": -1}

    def __len__(self) -> int:
        return len(self.records)

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"tile index {i} out of range for {len(self)} tiles")
        return i % len(self)

    def images(self, i: int) -> np.ndarray:
        """Inputs of tile ``i``: uint8 ``(n_inputs, S, S, 3)``, target first, ``(y, x, c)``."""
        return np.asarray(self._array("images")[self._check(i)])

    def label(self, i: int) -> np.ndarray:
        """Label of the target of tile ``i``: uint8 ``(S, S)``; unlabelled = ignore index."""
        return np.asarray(self._array("labels")[self._check(i)])

    def points(self, i: int) -> np.ndarray | None:
        """Point probability map ``exp(-a d)`` of tile ``i`` as float32 ``(S, S)``, or None."""
        arr = self._array("points")
        if arr is None:
            return None
        return np.asarray(arr[self._check(i)], dtype=np.float32)

    @property
    def has_points(self) -> bool:
        """Whether the dataset stores point probability maps."""
        return self.manifest.get("point_sigma") is not None

    # -- queries ----------------------------------------------------------------------
    def indices(self, split: str | None = None) -> np.ndarray:
        """Tile indices (int64) of ``split`` (``"train"``, ``"val"``, ``"test"``) or of all."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        return np.asarray([r["index"] for r in self.records if r["split"] == split],
                          dtype=np.int64)

    def class_pixel_counts(self, split: str | None = None) -> np.ndarray:
        """Labelled target pixels per class index, int64 ``(n_classes,)``, of a split or all."""
        n = self.class_map.n_classes
        out = np.zeros(n, dtype=np.int64)
        for r in self.records:
            if split is None or r["split"] == split:
                out += np.asarray(r["class_counts"], dtype=np.int64)[:n]
        return out

    def __repr__(self) -> str:
        return (f"TileDataset({str(self.path)!r}, n_tiles={len(self)}, "
                f"inputs={[i.magnification for i in self.geometry.inputs]}x, "
                f"classes={self.class_map.names})")


def _read_records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e}; re-create the dataset") from e
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except ValueError as e:
        raise DatasetError(f"{path} is damaged ({e}); re-create the dataset") from e


def open_dataset(path: str | os.PathLike) -> TileDataset:
    """Open a tile dataset folder (see ``docs/dataset-format.md``).

    Raises
    ------
    DatasetError
        If the folder is not a dataset, is damaged, or has a newer format version.
    """
    return TileDataset(path)


def split_pixel_counts(records: Sequence[dict], slide_split: dict[str, str],
                       n_classes: int) -> dict[str, list[int]]:
    """Class pixel counts of all tiles and of every split, as JSON-ready lists."""
    out = {k: np.zeros(n_classes, dtype=np.int64) for k in ("all", *SPLITS)}
    for r in records:
        c = np.asarray(r["class_counts"], dtype=np.int64)[:n_classes]
        out["all"] += c
        out[slide_split[r["slide_id"]]] += c
    return {k: v.tolist() for k, v in out.items()}


def resplit_dataset(path: str | os.PathLike, ratios: Sequence[float] = (0.7, 0.15, 0.15),
                    seed: int = 0) -> dict:
    """Re-assign the splits of a dataset by group, in place.

    Rewrites ``tiles.jsonl`` then ``manifest.json``, each atomically (the
    manifest is authoritative, see the module docstring). Images and labels
    are not touched. The manifest gets a new ``dataset_id`` (the old one is
    kept as ``resplit_from``): training runs and checkpoints tied to the old
    splits do not silently resume on the new ones.

    Returns
    -------
    dict
        Summary: the dataset path, group -> split, tiles per split.
    """
    ds = open_dataset(path)
    r = _parse_ratios(ratios)
    slides = ds.manifest["slides"]
    by_group = assign_splits([s["group"] for s in slides], r, seed)
    slide_split = {s["slide_id"]: by_group[str(s["group"])] for s in slides}
    for s in slides:
        s["split"] = slide_split[s["slide_id"]]
    lines = []
    for rec in ds.records:
        rec["split"] = slide_split[rec["slide_id"]]
        lines.append(json.dumps(rec))
    atomic_write_text(ds.path / "tiles.jsonl", "".join(line + "\n" for line in lines))
    ds.manifest["class_pixel_counts"] = split_pixel_counts(
        ds.records, slide_split, ds.class_map.n_classes)
    ds.manifest["split"] = {"ratios": [float(v) for v in r], "seed": int(seed), "by": "group"}
    # new splits make a new dataset for training (a resume must not mix them): new id
    ds.manifest["resplit_from"] = ds.manifest.get("dataset_id")
    ds.manifest["dataset_id"] = str(uuid.uuid4())
    atomic_write_text(ds.path / "manifest.json", json.dumps(ds.manifest, indent=1))
    n_per_split = {k: sum(1 for rec in ds.records if rec["split"] == k) for k in SPLITS}
    return {"dataset": str(ds.path), "groups": by_group, "n_tiles_per_split": n_per_split,
            "ratios": [float(v) for v in r], "seed": int(seed)}
