"""Small real tile datasets for the training tests, written in the documented format.

``write_tile_dataset`` paints a synthetic "slide" (Voronoi regions, one class each,
a colour per class plus noise), cuts target tiles on a grid and concentric context
inputs (block-averaged by their mpp ratio, zero outside the slide), and writes
``manifest.json``, ``tiles.jsonl`` and ``tiles.zarr`` exactly as
``docs/dataset-format.md`` specifies. Pixels on class boundaries are left
unlabelled (ignore index), as in partial annotations.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

CLASSES = ("Background", "Stroma", "Carcinoma", "Benign")
COLOURS = np.array([[235, 230, 240], [230, 140, 190], [120, 40, 140], [60, 60, 200]], np.float32)


def _paint_slide(rng: np.random.Generator, side: int, n_classes: int):
    n_seeds = 14
    seeds = rng.uniform(0, side, size=(n_seeds, 2))
    cls = np.arange(n_seeds) % n_classes
    yy, xx = np.mgrid[0:side, 0:side]
    d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    label = cls[np.argmin(d, axis=0)].astype(np.uint8)
    img = COLOURS[label] + rng.normal(0, 12, size=(side, side, 3))
    return np.clip(img, 0, 255).astype(np.uint8), label


def _crop(arr: np.ndarray, cy: int, cx: int, half: int) -> np.ndarray:
    """Centred crop of ``2*half`` px, zero-padded outside ``arr``."""
    out = np.zeros((2 * half, 2 * half, *arr.shape[2:]), arr.dtype)
    y0, x0 = cy - half, cx - half
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + 2 * half, arr.shape[0]), min(x0 + 2 * half, arr.shape[1])
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = arr[sy0:sy1, sx0:sx1]
    return out


def write_tile_dataset(root: Path, *, size: int = 32, ratios: tuple[int, ...] = (2, 4),
                       slides: tuple[tuple[str, str], ...] = (("train_0", "train"),
                                                               ("val_0", "val")),
                       slide_px: int = 192, seed: int = 0,
                       classes: tuple[str, ...] = CLASSES) -> Path:
    """Write a dataset folder; return its path. Target mpp 0.5, inputs at ratios x mpp."""
    rng = np.random.default_rng(seed)
    ignore = 255
    n_classes = len(classes)
    images, labels, records, slide_meta = [], [], [], []
    for slide_id, split in slides:
        img, lab = _paint_slide(rng, slide_px, n_classes)
        edge = np.zeros_like(lab, bool)
        edge[1:] |= lab[1:] != lab[:-1]
        edge[:-1] |= lab[1:] != lab[:-1]
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        edge[:, :-1] |= lab[:, 1:] != lab[:, :-1]
        lab_partial = np.where(edge, ignore, lab).astype(np.uint8)
        n_slide = 0
        for y in range(0, slide_px - size + 1, size):
            for x in range(0, slide_px - size + 1, size):
                cy, cx = y + size // 2, x + size // 2
                inputs = [img[y:y + size, x:x + size]]
                for r in ratios:
                    big = _crop(img, cy, cx, size * r // 2).astype(np.float32)
                    small = big.reshape(size, r, size, r, 3).mean(axis=(1, 3))
                    inputs.append(np.round(small).astype(np.uint8))
                t_lab = lab_partial[y:y + size, x:x + size]
                counts = np.bincount(t_lab[t_lab != ignore], minlength=n_classes)[:n_classes]
                records.append({"index": len(records), "slide_id": slide_id, "group": slide_id,
                                "split": split, "box": [x, y, size, size], "tissue": 1.0,
                                "labelled": float((t_lab != ignore).mean()),
                                "class_counts": counts.tolist(), "n_points": 0})
                images.append(np.stack(inputs))
                labels.append(t_lab)
                n_slide += 1
        slide_meta.append({"slide_id": slide_id, "path": f"/synthetic/{slide_id}.tif",
                           "group": slide_id, "split": split, "mpp": 0.5, "width": slide_px,
                           "height": slide_px, "n_tiles": n_slide, "annotations": None})
    images_a, labels_a = np.stack(images), np.stack(labels)
    root.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(root / "tiles.zarr", mode="w")
    arr = group.create_array("images", shape=images_a.shape, chunks=(1, *images_a.shape[1:]),
                             dtype="uint8")
    arr[...] = images_a
    arr = group.create_array("labels", shape=labels_a.shape, chunks=(1, size, size),
                             dtype="uint8")
    arr[...] = labels_a
    pix = {k: np.zeros(n_classes, np.int64) for k in ("all", "train", "val", "test")}
    for r in records:
        pix["all"] += r["class_counts"]
        pix[r["split"]] += r["class_counts"]
    geometry = {"target_size": size, "target_mpp": 0.5,
                "inputs": [{"mpp": 0.5 * q, "size": size, "magnification": 20.0 / q}
                           for q in (1, *ratios)]}
    class_map = {"classes": [{"name": n, "index": i, "color": COLOURS[i].astype(int).tolist()}
                             for i, n in enumerate(classes)], "ignore_index": ignore}
    manifest = {"format": "magnipath-tiles", "version": 1, "created": "2026-11-22T05:00:00Z",
                "magnipath_version": "0.1.0", "dataset_id": str(uuid.UUID(int=seed + 1)),
                "geometry": geometry, "class_map": class_map, "stride": size,
                "filters": {"min_tissue": 0.0, "min_labelled": 0.01, "require_classes": []},
                "point_sigma": None, "slides": slide_meta, "n_tiles": len(records),
                "class_pixel_counts": {k: v.tolist() for k, v in pix.items()},
                "summary": {"invalid_repaired": 0, "clipped": 0, "seconds": 0.0}}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (root / "tiles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


@pytest.fixture(scope="session")
def ds3(tmp_path_factory) -> Path:
    """3 inputs (20x target + 10x and 5x context), 32 px tiles, 36 train + 36 val tiles."""
    return write_tile_dataset(tmp_path_factory.mktemp("ds3") / "dataset")


@pytest.fixture(scope="session")
def ds1(tmp_path_factory) -> Path:
    """Target input only, 32 px tiles, 16 train tiles and no validation split."""
    return write_tile_dataset(tmp_path_factory.mktemp("ds1") / "dataset", ratios=(),
                              slides=(("train_0", "train"),), slide_px=128, seed=3)
