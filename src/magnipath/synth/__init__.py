"""Synthetic H&E whole-slide images with ground truth (``magnipath synth``).

A slide is drawn from a seed: a :class:`SlideLayout` of class polygons (level-0
pixels, a partition of the slide: Background, Stroma, Carcinoma, Benign, TLS,
Necrosis, Adipose) plus mitosis points; :func:`render_region` paints any box at
any resolution from a Beer–Lambert H&E stain model with sizes in µm; and
:func:`synthesize` streams a pyramidal tiled TIFF tile by tile, with the ground
truth as QuPath GeoJSON next to it::

    NAME.tif               the slide (BigTIFF, JPEG or zlib tiles, mpp in the metadata)
    NAME.geojson           exhaustive class polygons
    NAME.partial.geojson   DMMN-style partial annotations
    NAME.mitoses.geojson   mitotic figures as points of class "Mitosis"

A :class:`Scanner` (``SynthConfig.scanner``; presets in :data:`SCANNER_PRESETS`)
changes the stain and scanner look only: the same seed renders the same layout
and ground truth under any scanner.

Examples
--------
>>> from magnipath.synth import SynthConfig, make_layout, render_region
>>> layout = make_layout(SynthConfig(width=2048, height=2048, seed=3))
>>> render_region(layout, (0, 0, 2048, 2048), mpp=4.0).shape
(128, 128, 3)
"""

from __future__ import annotations

import time
from pathlib import Path

from magnipath._io import atomic_path
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report
from magnipath.synth._config import SynthConfig, SynthError, SynthResult
from magnipath.synth._layout import (
    MITOSIS_CLASS,
    MITOSIS_COLOR,
    SYNTH_CLASSES,
    SlideLayout,
    make_layout,
)
from magnipath.synth._render import render_labels, render_region
from magnipath.synth._scanner import SCANNER_PRESETS, Scanner, get_scanner
from magnipath.synth._writer import level_shapes, write_pyramid

__all__ = [
    "MITOSIS_CLASS",
    "MITOSIS_COLOR",
    "SCANNER_PRESETS",
    "SYNTH_CLASSES",
    "Scanner",
    "SlideLayout",
    "SynthConfig",
    "SynthError",
    "SynthResult",
    "aperio_description",
    "get_scanner",
    "level_shapes",
    "make_layout",
    "render_labels",
    "render_region",
    "sidecar_paths",
    "synthesize",
]


def sidecar_paths(path: str | Path) -> tuple[Path, Path, Path]:
    """``(truth, partial, mitoses)`` GeoJSON paths next to slide ``NAME.tif``."""
    p = Path(path)
    stem = p.with_suffix("")
    return (Path(f"{stem}.geojson"), Path(f"{stem}.partial.geojson"),
            Path(f"{stem}.mitoses.geojson"))


def aperio_description(config: SynthConfig) -> str:
    """ImageDescription of level 0: a MagniPath line, then an Aperio-style line with
    ``|MPP = ...|AppMag = ...`` (µm/px and objective magnification = 10 / mpp).

    The first line is not ``Aperio ...`` on purpose: readers such as tifffile then
    treat the second IFD as an SVS thumbnail instead of pyramid level 1.
    """
    w, h, t = config.width, config.height, config.tile
    mag = 10.0 / config.mpp
    mag_s = f"{mag:g}"
    codec = f"JPEG/RGB Q={config.jpeg_quality}" if config.compression == "jpeg" else "ZLIB/RGB"
    stain = "" if config.scanner == Scanner() else f"|Stain = {config.scanner.name}"
    return (f"MagniPath synthetic H&E slide (seed {config.seed})\r\n"
            f"Aperio Image Library v12.0.0 (MagniPath synth)\r\n"
            f"{w}x{h} [0,0 {w}x{h}] ({t}x{t}) {codec}"
            f"|AppMag = {mag_s}|MPP = {config.mpp:g}|Seed = {config.seed}{stain}")


def synthesize(path: str | Path, config: SynthConfig | None = None, *,
               progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None) -> SynthResult:
    """Write a synthetic slide and its ground truth.

    Parameters
    ----------
    path : str or Path
        The slide ``NAME.tif``; ``NAME.geojson``, ``NAME.partial.geojson`` and
        ``NAME.mitoses.geojson`` are written next to it.
    config : SynthConfig, optional
        Size (level-0 px), resolution (µm/px), seed, tiling and compression.
    progress : callable, optional
        Receives :class:`magnipath.progress.Progress` events (stage ``"synth"``,
        one per level-0 tile row).
    cancel : callable, optional
        Returns ``True`` to stop; nothing is left behind then.

    Returns
    -------
    SynthResult

    Raises
    ------
    SynthError
        When a setting is out of range.
    magnipath.Cancelled
        When ``cancel`` asked to stop.
    """
    from magnipath.synth._truth import exhaustive_objects, mitosis_objects, partial_objects
    from qupath_bridge.geojson import write_geojson

    t0 = time.perf_counter()
    config = (config or SynthConfig()).validate()
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise SynthError(f"{path}: the synthetic slide must be a .tif or .tiff file")
    layout = make_layout(config)
    check_cancel(cancel)

    def render(x: int, y: int, w: int, h: int):
        return render_region(layout, (x, y, w, h))

    truth, partial, mitoses = sidecar_paths(path)
    with atomic_path(path) as tmp:  # the slide appears only once everything is written
        levels = write_pyramid(tmp, (config.height, config.width), render, mpp=config.mpp,
                               tile=config.tile, compression=config.compression,
                               quality=config.jpeg_quality, description=aperio_description(config),
                               progress=progress, cancel=cancel)
        check_cancel(cancel)
        report(progress, "synth/annotations", 0, 3)
        write_geojson(exhaustive_objects(layout), truth)
        part = partial_objects(layout)
        report(progress, "synth/annotations", 1, 3)
        write_geojson(part, partial)
        report(progress, "synth/annotations", 2, 3)
        write_geojson(mitosis_objects(layout), mitoses)
        report(progress, "synth/annotations", 3, 3)
    n_partial: dict[str, int] = {n: 0 for n in layout.class_map.names}
    for o in part:
        n_partial[o.classification] += 1  # type: ignore[index]
    return SynthResult(path, truth, partial, mitoses, layout.counts(), len(layout.mitoses),
                       time.perf_counter() - t0, levels, config, n_partial)
