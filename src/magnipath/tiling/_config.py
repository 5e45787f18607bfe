"""Inputs of :func:`magnipath.tiling.make_dataset`: the slides and the tiling options."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from magnipath._errors import TilingError
from magnipath.geometry import TileGeometry


@dataclass(frozen=True)
class SlideSource:
    """One slide to tile, with its annotations.

    Attributes
    ----------
    path : Path
        The slide file.
    annotations : Path or list of QuPathObject or None
        QuPath GeoJSON with class polygons (level-0 pixels) and optionally
        point annotations; ``None`` gives all-ignore labels.
    points : Path or list of QuPathObject or None
        A separate file of point annotations (e.g. mitoses), level-0 pixels.
    slide_id : str or None
        Unique name of the slide in the dataset; default the file stem.
    group : str or None
        Patient/group id; slides of one group always land in one split.
        Default: the slide id.
    mpp : float or None
        Override of the slide's level-0 resolution, µm/px.
    mpp_source : str or None
        Where ``mpp`` came from, recorded in the manifest (e.g. ``"estimated
        (baseline)"`` for :func:`magnipath.magnification.suggest_mpp`'s estimate,
        ``"qupath"``); default ``"override"`` when ``mpp`` is given, else the
        slide file's own source (``"ome"``, ``"aperio"``...).
    """

    path: Path
    annotations: Path | list | None = None
    points: Path | list | None = None
    slide_id: str | None = None
    group: str | None = None
    mpp: float | None = None
    mpp_source: str | None = None

    @property
    def id(self) -> str:
        """The slide id: :attr:`slide_id` or the file name without its extension(s)."""
        return self.slide_id or slide_stem(self.path)

    @property
    def group_id(self) -> str:
        """The group id: :attr:`group` or the slide id."""
        return self.group or self.id


def slide_stem(path: str | Path) -> str:
    """File name without the slide extension (``a.ome.tif`` -> ``a``, ``b.svs`` -> ``b``)."""
    name = Path(path).name
    return re.sub(r"(\.ome)?\.[A-Za-z0-9]+$", "", name) or name


@dataclass(frozen=True)
class TilingConfig:
    """How to cut tiles.

    Attributes
    ----------
    geometry : TileGeometry
        Target tile (size in target pixels, resolution in µm/px) and its
        concentric inputs; every input must have the target's size.
    stride : int or None
        Step between tiles in target pixels; default
        ``round(target_size * (1 - overlap))``.
    overlap : float
        Fraction of the target side shared by neighbours, in [0, 1).
    min_tissue : float
        Keep a tile when its tissue fraction (of the target box) is >= this; 0
        keeps background tiles too.
    min_labelled : float
        Keep a tile when the labelled fraction of its target pixels is > this
        (DMMN: 0.01); 0 disables the filter.
    require_classes : tuple of str
        Keep only tiles with at least one target pixel of at least one of these
        classes (TLS paper: ``("TLS",)``).
    allow_upsample : bool
        Allow a target finer than the scan (otherwise an error).
    tissue_mpp : float
        Resolution of the tissue mask, µm/px.
    glass_unlabelled : bool
        Leave the target pixels the tissue mask calls glass unlabelled (ignore index),
        whatever the annotations say. For models run with
        ``InferConfig(glass_background=True)``, where the mask, not the model, decides
        what is glass: the model then never has to tell white glass from white fat
        (only from the lumina and fat inside the tissue).
    point_class : str or None
        Class name of point annotations (e.g. ``"Mitosis"``).
    point_a : float
        Decay of the point probability map ``exp(-a d)``, ``d`` in target pixels.
    split : (float, float, float)
        Train/val/test shares of the groups.
    seed : int
        Seed of the split.
    workers : int
        Threads reading tiles (1 = no thread pool).
    """

    geometry: TileGeometry
    stride: int | None = None
    overlap: float = 0.0
    min_tissue: float = 0.05
    min_labelled: float = 0.0
    require_classes: tuple[str, ...] = ()
    allow_upsample: bool = False
    tissue_mpp: float = 8.0
    glass_unlabelled: bool = False
    point_class: str | None = None
    point_a: float = 0.1
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    workers: int = 2

    def validate(self) -> None:
        """Raise :class:`TilingError` naming the first invalid field."""
        g = self.geometry
        if g.target_size < 1 or not g.target_mpp > 0:
            raise TilingError(f"tile size {g.target_size} px and target mpp {g.target_mpp} "
                              "must be positive")
        if not 0.1 <= 10.0 / g.target_mpp <= 100.0:
            raise TilingError(f"target magnification {10 / g.target_mpp:.3g}x is outside "
                              "0.1x-100x; give e.g. --magnification 20")
        bad = [i for i in g.inputs if i.size != g.target_size or not i.mpp > 0]
        if bad or not g.inputs or abs(g.inputs[0].mpp - g.target_mpp) > 1e-9 * g.target_mpp:
            raise TilingError(
                "every input of the tile geometry must have the target's size "
                f"({g.target_size} px) and the first input must be the target itself; got "
                f"{[(i.mpp, i.size) for i in g.inputs]}")
        for name in ("min_tissue", "min_labelled"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise TilingError(f"{name} must be a fraction in [0, 1], got {v}")
        if not self.point_a > 0 or not math.isfinite(self.point_a):
            raise TilingError(f"point_a (decay per target pixel) must be positive, "
                              f"got {self.point_a}")
        if not self.tissue_mpp > 0:
            raise TilingError(f"tissue_mpp must be positive, got {self.tissue_mpp}")
        if int(self.workers) < 1:
            raise TilingError(f"workers must be >= 1, got {self.workers}")
