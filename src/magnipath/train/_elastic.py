"""Elastic deformation and class balancing by elastic copies (Ho et al., DMMN).

Deformation
    A ``grid x grid`` lattice of control points (17 x 17) spans the tile,
    corners included. Each control point is displaced by ``N(0, sigma^2)`` px in
    x and in y (sigma = 4 px). The displacement of every pixel is the bicubic
    interpolation of the control-point displacements. The image is resampled
    bicubically (values clamped to [0, 1]) and the label by nearest neighbour,
    both with reflection at the border, so image and label stay aligned and no
    class is invented.

Several inputs
    All inputs of a sample (the target tile and its concentric context tiles) are
    ``S x S`` pixels, each in its own pixel frame. They are deformed with the *same*
    displacement field expressed in pixels of their own frame, together with the
    label (which shares the target's frame). The target and the label are thus
    warped identically; a context input gets the same pattern over its wider field
    of view (its displacements are the same number of its own, larger pixels).

Balancing
    Every training patch is assigned the highest-order class present in its
    label (class order, highest first); a patch holding none of the ordered
    classes belongs to its most frequent labelled class; a patch with no labelled
    pixel belongs to none. A patch of class ``c`` gets ``r_c`` deformed copies.
    Copy ``k`` of tile ``i`` is deformed by a field seeded by ``(seed, i, k)``
    only, so the balanced set is the same in every epoch and after a resume;
    copies are generated on the fly, never stored. Pixel counts after balancing
    are counted from the originals (a copy moves pixels by a few px only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_ELASTIC_STREAM = 0xE1A5  # separates the elastic random stream from augmentation


def elastic_field(size: int, rng: np.random.Generator, *, grid: int = 17,
                  sigma: float = 4.0) -> torch.Tensor:
    """A smooth random displacement field.

    Parameters
    ----------
    size : int
        Side of the tile, px.
    rng : numpy.random.Generator
        Source of the control-point displacements.
    grid : int
        Control points per side (corners included).
    sigma : float
        Standard deviation of each control-point displacement, px.

    Returns
    -------
    Tensor
        float32 ``(2, size, size)``: displacement ``(dy, dx)`` in px of each output
        pixel ``(y, x)``: the output takes the input at ``(y + dy, x + dx)``.
    """
    ctrl = torch.from_numpy(rng.normal(0.0, sigma, size=(1, 2, grid, grid)).astype(np.float32))
    return F.interpolate(ctrl, size=(size, size), mode="bicubic", align_corners=True)[0]


def _sampling_grid(disp: torch.Tensor) -> torch.Tensor:
    """grid_sample coordinates (1, S, S, 2) in [-1, 1] (x, y) for displacement (2, S, S)."""
    s = disp.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32),
                            torch.arange(s, dtype=torch.float32), indexing="ij")
    sy = (yy + disp[0]) * (2.0 / max(s - 1, 1)) - 1.0
    sx = (xx + disp[1]) * (2.0 / max(s - 1, 1)) - 1.0
    return torch.stack([sx, sy], dim=-1)[None]


def elastic_deform(images: torch.Tensor, label: torch.Tensor | None,
                   disp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Deform all inputs of one sample and its label with one displacement field.

    Parameters
    ----------
    images : Tensor
        float ``(n_inputs, 3, S, S)``, values in [0, 1] (axes input, channel, y, x).
    label : Tensor or None
        Integer ``(S, S)`` label of the target (any integer dtype; ignore index kept).
    disp : Tensor
        ``(2, S, S)`` displacement in px from :func:`elastic_field`.

    Returns
    -------
    (Tensor, Tensor or None)
        Deformed images (bicubic, clamped to [0, 1]) and label (nearest neighbour,
        same dtype as given).
    """
    grid = _sampling_grid(disp.to(torch.float32))
    n = images.shape[0]
    g = grid.expand(n, -1, -1, -1)
    out = F.grid_sample(images.float(), g, mode="bicubic", padding_mode="reflection",
                        align_corners=True).clamp_(0.0, 1.0)
    lab = None
    if label is not None:
        lab = F.grid_sample(label[None, None].to(torch.float32), grid, mode="nearest",
                            padding_mode="reflection", align_corners=True)[0, 0]
        lab = lab.round().to(label.dtype)
    return out, lab


def copy_rng(seed: int, tile: int, copy: int) -> np.random.Generator:
    """The random stream of elastic copy ``copy`` (>= 1) of tile ``tile``."""
    return np.random.default_rng([int(seed), _ELASTIC_STREAM, int(tile), int(copy)])


# -- class balancing ------------------------------------------------------------------------
def patch_classes(class_counts: np.ndarray, order: list[int]) -> np.ndarray:
    """The class of each patch for balancing.

    Parameters
    ----------
    class_counts : ndarray
        int ``(n_patches, n_classes)``: labelled pixels of each class per patch.
    order : list of int
        Class indices, highest order first.

    Returns
    -------
    ndarray
        int64 ``(n_patches,)``: the highest-order class present; if none of the
        ordered classes is present, the most frequent labelled class; -1 for a
        patch without labelled pixels.
    """
    counts = np.asarray(class_counts)
    out = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1).astype(np.int64)
    decided = np.zeros(len(counts), dtype=bool)
    for c in order:
        hit = (counts[:, c] > 0) & ~decided
        out[hit] = c
        decided |= hit
    return out


@dataclass(frozen=True)
class BalancePlan:
    """The balanced training set: originals plus elastic copies.

    Attributes
    ----------
    tiles : ndarray
        int64 ``(n_items,)`` dataset tile index of each item.
    copies : ndarray
        int64 ``(n_items,)``: 0 for the original, ``k >= 1`` for elastic copy ``k``.
    patch_class : dict
        Tile index -> its balancing class (-1 for none).
    rates : list of int
        Copies per patch, by class index.
    order : list of int
        Class order, highest first.
    counts_before, counts_after : ndarray
        int64 ``(n_classes,)`` labelled pixels per class before and after balancing.
    patches_before, patches_after : ndarray
        int64 ``(n_classes,)`` patches per balancing class before and after.
    """

    tiles: np.ndarray
    copies: np.ndarray
    patch_class: dict
    rates: list[int]
    order: list[int]
    counts_before: np.ndarray
    counts_after: np.ndarray
    patches_before: np.ndarray
    patches_after: np.ndarray

    def __len__(self) -> int:
        return len(self.tiles)

    def table(self, class_names: dict[int, str]) -> list[dict]:
        """Per-class rows (the paper's Fig. 5): pixels and patches before/after, rate."""
        rows = []
        for c, name in sorted(class_names.items()):
            rank = self.order.index(c) + 1 if c in self.order else None
            rows.append({"class": name, "index": c, "rate": self.rates[c], "order": rank,
                         "patches_before": int(self.patches_before[c]),
                         "patches_after": int(self.patches_after[c]),
                         "pixels_before": int(self.counts_before[c]),
                         "pixels_after": int(self.counts_after[c])})
        return rows


def plan_balance(tile_indices: np.ndarray, class_counts: np.ndarray, rates: list[int],
                 order: list[int]) -> BalancePlan:
    """Expand the training patches by ``r_c`` elastic copies per patch of class ``c``.

    Parameters
    ----------
    tile_indices : ndarray
        Dataset indices of the training tiles.
    class_counts : ndarray
        int ``(len(tile_indices), n_classes)`` labelled pixels per class of each tile.
    rates : list of int
        ``r_c`` by class index (non-negative).
    order : list of int
        Class indices, highest order first.

    Returns
    -------
    BalancePlan
    """
    tile_indices = np.asarray(tile_indices, dtype=np.int64)
    counts = np.asarray(class_counts, dtype=np.int64).reshape(len(tile_indices), -1)
    n_classes = counts.shape[1]
    r = np.zeros(n_classes, dtype=np.int64)
    r[:len(rates)] = np.asarray(rates, dtype=np.int64)[:n_classes]
    cls = patch_classes(counts, order)
    n_copies = np.where(cls >= 0, r[np.clip(cls, 0, None)], 0)
    tiles = np.repeat(tile_indices, 1 + n_copies)
    copies = np.concatenate([np.arange(1 + k, dtype=np.int64) for k in n_copies]) \
        if len(n_copies) else np.zeros(0, dtype=np.int64)
    before = counts.sum(axis=0)
    after = (counts * (1 + n_copies)[:, None]).sum(axis=0)
    valid = cls >= 0
    pb = np.bincount(cls[valid], minlength=n_classes)[:n_classes]
    pa = np.bincount(cls[valid], weights=(1 + n_copies)[valid],
                     minlength=n_classes)[:n_classes].astype(np.int64)
    owner = {int(t): int(c) for t, c in zip(tile_indices, cls, strict=True)}
    return BalancePlan(tiles, copies, owner, [int(x) for x in r], list(order), before, after,
                       pb, pa)
