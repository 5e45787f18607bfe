"""Sample data: the MagniPath synthetic slide with its ground truth.

The slide is made once by :func:`magnipath.synth.synthesize` (the generator of
``magnipath synth``) into a cache folder and reused afterwards:
``$MAGNIPATH_CACHE_DIR/sample/`` if that variable is set, else
``$XDG_CACHE_HOME/magnipath/sample/`` (default ``~/.cache/magnipath/sample/``).
It opens as four layers: the slide (lazy multiscale, µm scale), the exhaustive
ground truth (Shapes), the mitoses (Points) and the DMMN-style partial
annotations (Shapes, hidden), all in the slide's frame.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from magnipath._io import atomic_path
from magnipath._napari._reader import read_annotations, read_slide

SAMPLE_WIDTH = 4096
SAMPLE_HEIGHT = 4096
SAMPLE_MPP = 0.25
SAMPLE_SEED = 0
_RECORD = "sample.json"


def cache_dir() -> Path:
    """Folder of MagniPath's cached files (see the module docstring)."""
    env = os.environ.get("MAGNIPATH_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "magnipath"


def sample_paths(*, width: int = SAMPLE_WIDTH, height: int = SAMPLE_HEIGHT,
                 mpp: float = SAMPLE_MPP, seed: int = SAMPLE_SEED) -> dict[str, Path]:
    """Make the synthetic sample slide once (cached) and return its files.

    Parameters
    ----------
    width, height : int
        Level-0 size in pixels.
    mpp : float
        Level-0 µm per pixel (0.25 = 40x).
    seed : int
        Generator seed.

    Returns
    -------
    dict
        ``{"slide", "truth", "partial", "mitoses"}`` -> paths (GeoJSON in
        level-0 pixels of the slide).
    """
    from magnipath.synth import SynthConfig, synthesize

    folder = cache_dir() / "sample" / f"synthetic-{width}x{height}-{mpp:g}mpp-seed{seed}"
    record = folder / _RECORD
    if record.is_file():
        try:
            paths = {k: folder / v for k, v in json.loads(record.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            paths = {}
        if paths and all(p.is_file() for p in paths.values()):
            return paths
    with atomic_path(folder, is_dir=True) as tmp:
        res = synthesize(tmp / "synthetic.tif",
                         SynthConfig(width=width, height=height, mpp=mpp, seed=seed))
        names = {k: Path(getattr(res, k)).relative_to(tmp).as_posix()
                 for k in ("slide", "truth", "partial", "mitoses")}
        (tmp / _RECORD).write_text(json.dumps(names, indent=1))
    return {k: folder / v for k, v in names.items()}


def make_sample_slide() -> list[tuple[Any, dict, str]]:
    """npe2 sample-data contribution: slide + ground truth + mitoses + partial annotations."""
    paths = sample_paths()
    image = read_slide(paths["slide"])
    mpp = image[0][1]["metadata"]["magnipath"]["mpp"]
    truth = read_annotations(paths["truth"], mpp=mpp)
    for _, kwargs, _ in truth:
        kwargs["name"] = "ground truth" if "(points)" not in kwargs["name"] else "truth points"
    mitoses = read_annotations(paths["mitoses"], mpp=mpp)
    for _, kwargs, _ in mitoses:
        kwargs["name"] = "mitoses"
    partial = read_annotations(paths["partial"], mpp=mpp)
    for _, kwargs, _ in partial:
        kwargs["name"] = "partial annotations"
        kwargs["visible"] = False
    return image + truth + mitoses + partial
