"""Training samples from a tile dataset: elastic copies, augmentation, normalisation.

A sample is addressed by ``(epoch, item)``: ``item`` is a position in the
balanced item list (tile index + copy number, see ``_elastic``). Everything
random about a sample is drawn from a generator seeded by ``(seed, epoch,
item)`` (augmentation) or ``(seed, tile, copy)`` (elastic copy), never from a
global or per-worker random state, so a sample is the same whatever the number
of DataLoader workers, and a resumed run sees the same samples as an
uninterrupted one.

Augmentation (same geometric transform for every input and the label; the same
colour transform for every input of a sample):

* rotation by ``k * 90°`` (k uniform in 0..3) and a horizontal flip with
  probability 1/2 (together: the 8 symmetries of the square, so vertical flips
  are included);
* brightness ``x * b``, contrast ``(x - m) * c + m`` (``m`` the mean grey of the
  input), saturation ``g + s * (x - g)`` (``g`` the pixel's grey) and a hue
  rotation by ``h`` turns in YIQ space, with ``b, c, s`` uniform in ``1 ± range``
  and ``h`` uniform in ``± range`` (``TrainConfig.jitter``); clamped to [0, 1];
* stain augmentation (HED jitter, optional Macenko re-staining;
  ``TrainConfig.stain_augment``, :mod:`magnipath.train._stain_aug`) from its own
  stream ``(seed, epoch, item)``, so turning it off leaves the other draws as they were.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from magnipath.checkpoint import DEFAULT_NORMALISATION
from magnipath.train._elastic import copy_rng, elastic_deform, elastic_field
from magnipath.train._stain_aug import stain_augment

_AUG_STREAM = 0xA46
_STAIN_STREAM = 0x57A

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114],
                         [0.596, -0.274, -0.322],
                         [0.211, -0.523, 0.312]], dtype=torch.float32)
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)
_GREY = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)


def colour_matrix(saturation: float, hue: float) -> torch.Tensor:
    """3x3 RGB matrix applying a saturation factor and a hue rotation (turns)."""
    a = 2 * math.pi * hue
    rot = torch.tensor([[1.0, 0.0, 0.0],
                        [0.0, math.cos(a), -math.sin(a)],
                        [0.0, math.sin(a), math.cos(a)]], dtype=torch.float32)
    sat = saturation * torch.eye(3) + (1 - saturation) * _GREY[None, :].expand(3, 3)
    return _YIQ2RGB @ rot @ _RGB2YIQ @ sat


def augment_sample(images: torch.Tensor, label: torch.Tensor, rng: np.random.Generator,
                   jitter: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random dihedral transform + colour jitter, shared by all inputs of a sample.

    Parameters
    ----------
    images : Tensor
        float ``(n_inputs, 3, S, S)`` in [0, 1] (axes input, channel, y, x).
    label : Tensor
        ``(S, S)`` integer label of the target.
    rng : numpy.random.Generator
        The sample's random stream.
    jitter : dict
        ``brightness``, ``contrast``, ``saturation`` (factor ranges) and ``hue`` (turns).
        Brightness ``b`` is applied as the gamma ``x ** (1 / b)`` (``b > 1`` brightens), so
        that near-white pixels keep their differences; contrast scales around the tile's
        mean grey.

    Returns
    -------
    (Tensor, Tensor)
    """
    k = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)
    b, c, s = (1.0 + rng.uniform(-1, 1) * float(jitter.get(key, 0.0))
               for key in ("brightness", "contrast", "saturation"))
    h = rng.uniform(-1, 1) * float(jitter.get("hue", 0.0))
    if k:
        images = torch.rot90(images, k, dims=(-2, -1))
        label = torch.rot90(label, k, dims=(-2, -1))
    if flip:
        images = images.flip(-1)
        label = label.flip(-1)
    # brightness as a gamma: white stays white and nothing saturates (a linear factor > 1
    # clipped pale tissue, e.g. adipocytes and their membranes, to the white of the glass)
    x = images.clamp_min(1e-6) ** (1.0 / b) if b != 1.0 else images
    mean = torch.einsum("nchw,c->n", x, _GREY) / (x.shape[-1] * x.shape[-2])
    x = (x - mean[:, None, None, None]) * c + mean[:, None, None, None]
    if s != 1.0 or h != 0.0:
        x = torch.einsum("dc,nchw->ndhw", colour_matrix(s, h), x)
    return x.clamp_(0.0, 1.0).contiguous(), label.contiguous()


def normalise(images: torch.Tensor, normalisation: dict[str, Any]) -> torch.Tensor:
    """float ``(..., 3, S, S)`` in [0, 1] -> ``(x - mean) / std`` per channel."""
    mean = torch.tensor(normalisation["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(normalisation["std"], dtype=torch.float32).view(3, 1, 1)
    return (images - mean) / std


def preload_tiles(dataset: Any, tiles: np.ndarray,
                  cache_mb: float) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Read ``tiles`` into memory when they take less than ``cache_mb`` MiB, else None.

    Returns
    -------
    dict or None
        Tile index -> (uint8 images ``(n_inputs, S, S, 3)``, uint8 label ``(S, S)``).
    """
    unique = np.unique(np.asarray(tiles, dtype=np.int64))
    if len(unique) == 0 or cache_mb <= 0:
        return None
    first = dataset.images(int(unique[0]))
    per_tile = first.nbytes + first.shape[1] * first.shape[2]
    if per_tile * len(unique) > cache_mb * 2**20:
        return None
    return {int(t): (np.ascontiguousarray(dataset.images(int(t))),
                     np.ascontiguousarray(dataset.label(int(t)))) for t in unique}


class TileSamples(Dataset):
    """Torch dataset over the balanced items of a :class:`~magnipath.dataset.TileDataset`.

    ``samples[(epoch, item)]`` returns ``(images, label)``: float32
    ``(n_inputs, 3, S, S)`` normalised images (target first) and int64 ``(S, S)``
    labels (the ignore index kept).

    Parameters
    ----------
    dataset : TileDataset or path
        The tile dataset (re-opened lazily in each worker process when a path is known).
    tiles, copies : ndarray
        Item list: tile index and copy number (0 = original, k >= 1 elastic copy k).
    seed : int
        Run seed.
    augment : bool
        Apply :func:`augment_sample`.
    jitter : dict
        Colour jitter ranges.
    elastic_grid, elastic_sigma
        Elastic deformation parameters (control points per side; px).
    normalisation : dict
        Stored in the model card.
    cache : dict, optional
        Tiles preloaded by :func:`preload_tiles` (tile index -> (images, label)).
    stain : dict, optional
        Stain augmentation settings (``TrainConfig.stain_augment``), applied with
        ``augment``; None or ``{}``: none.
    """

    def __init__(self, dataset: Any, tiles: np.ndarray, copies: np.ndarray, *, seed: int,
                 augment: bool, jitter: dict[str, float] | None = None, elastic_grid: int = 17,
                 elastic_sigma: float = 4.0, normalisation: dict | None = None,
                 cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
                 stain: dict[str, float] | None = None) -> None:
        self.tiles = np.asarray(tiles, dtype=np.int64)
        self.copies = np.asarray(copies, dtype=np.int64)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.jitter = dict(jitter or {})
        self.grid = int(elastic_grid)
        self.sigma = float(elastic_sigma)
        self.norm = dict(normalisation or DEFAULT_NORMALISATION)
        self._ds = dataset
        self._path = getattr(dataset, "path", None) if not isinstance(dataset, str | Path) \
            else Path(dataset)
        self._cache = cache
        self.stain = dict(stain or {})

    # -- tile access ---------------------------------------------------------------------------
    def _dataset(self) -> Any:
        if self._ds is None or isinstance(self._ds, str | Path):
            from magnipath.dataset import open_dataset

            self._ds = open_dataset(self._path)
        return self._ds

    def load(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``(n_inputs, S, S, 3)`` and label ``(S, S)`` of a tile."""
        if self._cache is not None and tile in self._cache:
            return self._cache[tile]
        ds = self._dataset()
        return ds.images(tile), ds.label(tile)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_ds"] = None  # each worker opens its own handle
        return state

    # -- samples -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = key if isinstance(key, tuple) else (0, key)
        tile, copy = int(self.tiles[item]), int(self.copies[item])
        imgs_u8, lab_u8 = self.load(tile)
        images = torch.from_numpy(np.asarray(imgs_u8)).permute(0, 3, 1, 2).float().div_(255.0)
        label = torch.from_numpy(np.asarray(lab_u8).astype(np.int64))
        if copy > 0:
            disp = elastic_field(images.shape[-1], copy_rng(self.seed, tile, copy),
                                 grid=self.grid, sigma=self.sigma)
            images, label = elastic_deform(images, label, disp)
        if self.augment:
            rng = np.random.default_rng([self.seed, _AUG_STREAM, int(epoch), int(item)])
            images, label = augment_sample(images, label, rng, self.jitter)
            if self.stain:
                srng = np.random.default_rng([self.seed, _STAIN_STREAM, int(epoch), int(item)])
                images = stain_augment(images, srng, self.stain)
        return normalise(images, self.norm).contiguous(), label


class EpochSampler(Sampler):
    """Yields ``(epoch, item)`` keys: a permutation seeded by ``(seed, epoch)``.

    Parameters
    ----------
    n_items : int
        Items in the dataset.
    seed : int
        Run seed.
    shuffle : bool
        Permute per epoch (training) or keep the order (validation).
    max_items : int or None
        Keep only the first ``max_items`` of each epoch's order.
    """

    def __init__(self, n_items: int, seed: int, *, shuffle: bool,
                 max_items: int | None = None) -> None:
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.max_items = max_items
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def order(self) -> list[int]:
        """Item positions of the current epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(self.n_items, generator=g).tolist()
        else:
            idx = list(range(self.n_items))
        return idx[:self.max_items] if self.max_items is not None else idx

    def __iter__(self):
        return iter([(self.epoch, i) for i in self.order()])

    def __len__(self) -> int:
        n = self.n_items
        return min(n, self.max_items) if self.max_items is not None else n
