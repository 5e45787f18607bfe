"""napari readers: whole-slide images and QuPath GeoJSON.

* A slide (``.tif``, ``.tiff``, ``.svs``, ``.ome.tif``; MRXS, NDPI and other
  openslide formats when openslide is installed; and any 2D raster Pillow
  reads: PNG, JPEG, BMP, GIF, WebP..., see :mod:`magnipath.slide._image`,
  with its in-memory pyramid) opens as ONE lazy multiscale
  RGB image layer: its data are the slide's per-level zarr arrays
  (:meth:`magnipath.slide.Slide.zarr_levels`), so napari reads only the tiles
  on screen at the level it shows, never level 0 whole. ``scale`` is the mpp
  (world coordinates in µm, see :mod:`._frames`). ``layer.metadata["magnipath"]``
  holds ``kind="slide"``, ``path``, ``mpp`` (``None`` when the file has none:
  the world unit is then the level-0 pixel), ``mpp_source`` (``"unknown"``
  then; ``"estimated (...)"`` once the Magnification widget applied an
  estimate) and ``slide`` (the open :class:`magnipath.slide.Slide`, kept open
  while the layer lives). A slide without mpp opens anyway, in pixels, with a
  warning that points to the Magnification widget.
* QuPath GeoJSON (``.geojson``, ``.json``, gzip too) opens as a Shapes layer
  (polygons with their holes, lines) and/or a Points layer (points); see
  :mod:`._layers`. The reader claims only files that parse as QuPath GeoJSON.
  An empty file gives an empty Shapes layer to draw into.
  Coordinates stay level-0 pixels; the layer's scale is the mpp of a sibling
  slide with the same stem (``a.geojson`` next to ``a.svs``, or QuPath's
  export name ``a.svs.geojson``), else 1 (world unit = level-0 pixel).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_warning

from magnipath._errors import SlideError
from magnipath._napari._frames import image_frame, vector_frame
from magnipath._napari._layers import objects_to_layer_data
from magnipath.slide import IMAGE_SUFFIXES, Slide, open_slide
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson import read_geojson

LayerData = tuple[Any, dict, str]
ReaderFunction = Callable[[str | list[str]], list[LayerData]]

SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs")
"""Suffixes read with tifffile (checked in this order)."""
OPENSLIDE_SUFFIXES = (".mrxs", ".ndpi", ".vms", ".vmu", ".scn", ".bif", ".svslide")
"""Suffixes only openslide reads."""
RASTER_SUFFIXES = IMAGE_SUFFIXES
"""Suffixes of ordinary 2D rasters (PNG, JPEG, ...), read with Pillow."""
GEOJSON_SUFFIXES = (".geojson", ".json", ".geojson.gz", ".json.gz")
UNKNOWN = "unknown"
"""``metadata["magnipath"]["mpp_source"]`` of a slide whose file gives no mpp."""


def _single(path: str | list[str]) -> str | None:
    if isinstance(path, list | tuple):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def _openslide_available() -> bool:
    try:
        import openslide  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def open_slide_for_viewing(path: str | os.PathLike, mpp: float | None = None
                           ) -> tuple[Slide, float | None]:
    """Open a slide; when its file has no mpp, open it anyway in pixel units.

    Returns
    -------
    (Slide, float or None)
        The slide and its known mpp (``None`` when neither the file nor
        ``mpp`` gives one; the slide then reports 1.0 µm/px internally).

    Raises
    ------
    SlideError
        When the file cannot be read as a slide at all.
    """
    try:
        slide = open_slide(path, mpp=mpp)
        return slide, slide.mpp
    except SlideError:
        if mpp is not None:
            raise
        slide = open_slide(path, mpp=1.0)  # readable, only the resolution is missing
        return slide, None


def slide_layer_data(slide: Slide, mpp: float | None, name: str | None = None) -> LayerData:
    """The image layer-data tuple of an open slide (lazy multiscale, µm scale).

    Parameters
    ----------
    slide : Slide
        An open slide; it stays open, referenced from the layer's metadata.
    mpp : float or None
        Its level-0 µm per pixel; ``None``: world units are level-0 pixels.
    name : str, optional
        Layer name; default the file name.
    """
    levels = slide.zarr_levels()
    meta = {"magnipath": {"kind": "slide", "path": str(Path(slide.path).resolve()),
                          "mpp": mpp, "mpp_source": slide.mpp_source if mpp else UNKNOWN,
                          "slide": slide}}
    kwargs = {"name": name or Path(slide.path).name, "rgb": True,
              "multiscale": True, "contrast_limits": [0, 255],
              "metadata": meta, **image_frame(mpp)}
    return (levels, kwargs, "image")


def read_slide(path: str | os.PathLike, mpp: float | None = None) -> list[LayerData]:
    """Layer data of a slide file (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        The slide.
    mpp : float, optional
        Level-0 µm per pixel, overriding the file's metadata.
    """
    slide, known = open_slide_for_viewing(path, mpp)
    if known is None:
        show_warning(no_mpp_notice(path))
    return [slide_layer_data(slide, known)]


def no_mpp_notice(path: str | os.PathLike) -> str:
    """The warning shown when a slide without mpp is opened (in pixels)."""
    return (f"{Path(path).name}: the file gives no pixel size (mpp); it is shown in pixels "
            "(scale 1) and tiling/inference need an mpp. Estimate it from the pixels in "
            "Plugins > MagniPath > Magnification (Region: whole image), check it, and press "
            "'Apply as layer scale'; or re-open it from a script with mpp=... if you know it.")


def get_slide_reader(path: str | list[str]) -> ReaderFunction | None:
    """npe2 reader contribution: a reader for one slide file, or ``None`` if not a slide."""
    p = _single(path)
    if p is None:
        return None
    low = p.lower()
    if low.endswith(OPENSLIDE_SUFFIXES):
        if not _openslide_available():
            return None
    elif not low.endswith(SLIDE_SUFFIXES + RASTER_SUFFIXES):
        return None
    try:  # claim the file only if it opens as a slide; the reader opens it again
        slide, _ = open_slide_for_viewing(p)
    except SlideError:
        return None
    slide.close()

    def reader(_: str | list[str]) -> list[LayerData]:
        return read_slide(p)

    return reader


def sibling_slide_mpp(path: str | os.PathLike) -> float | None:
    """mpp of a slide next to a GeoJSON file with the same stem, if one opens.

    ``dir/a.geojson`` looks for ``dir/a.<slide suffix>``; QuPath's export
    name ``dir/a.svs.geojson`` looks for ``dir/a.svs``; MagniPath's sidecar
    names ``dir/a.mitoses.geojson`` and ``dir/a.partial.geojson`` (``magnipath
    synth``) look for ``dir/a.<slide suffix>`` too.
    """
    p = Path(path)
    name = p.name
    for suf in GEOJSON_SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    stems = [name]
    if "." in name:  # MagniPath's sidecars: a.mitoses.geojson, a.partial.geojson next to a.tif
        stems.append(name.rsplit(".", 1)[0])
    candidates = [p.with_name(stem + s) for stem in stems
                  for s in ("", *SLIDE_SUFFIXES, *OPENSLIDE_SUFFIXES, *RASTER_SUFFIXES)]
    for c in candidates:
        if c.is_file() and c.name.lower().endswith(SLIDE_SUFFIXES + OPENSLIDE_SUFFIXES
                                                   + RASTER_SUFFIXES):
            try:
                with open_slide(c) as s:
                    return s.mpp
            except SlideError:
                continue
    return None


def read_annotations(path: str | os.PathLike, mpp: float | None = None,
                     objects: list | None = None) -> list[LayerData]:
    """Layer data of a QuPath GeoJSON file: a Shapes and/or a Points layer.

    Parameters
    ----------
    path : str or PathLike
        The file; coordinates in it are level-0 pixels.
    mpp : float, optional
        µm per level-0 pixel of its slide; default a sibling slide's, else none.
    objects : list of QuPathObject, optional
        Already-read objects of ``path`` (avoids reading it twice).
    """
    objs = read_geojson(path) if objects is None else objects
    mpp = mpp if mpp is not None else sibling_slide_mpp(path)
    name = Path(path).name
    source = str(Path(path).resolve())
    layers = objects_to_layer_data(objs, mpp=mpp, name=name, source=source)
    if not layers:  # an empty file: an empty Shapes layer to draw into
        meta = {"magnipath": {"kind": "annotations", "mpp": mpp, "source": source,
                              "class_colors": {}, "measurements": [], "objects": {}}}
        layers = [([], {"name": name, "metadata": meta, "ndim": 2, **vector_frame(mpp)},
                   "shapes")]
    return layers


def get_geojson_reader(path: str | list[str]) -> ReaderFunction | None:
    """npe2 reader contribution: claims only files that parse as QuPath GeoJSON."""
    p = _single(path)
    if p is None or not p.lower().endswith(GEOJSON_SUFFIXES):
        return None
    try:
        objects = read_geojson(p)
    except QuPathBridgeError:
        return None

    def reader(_: str | list[str]) -> list[LayerData]:
        return read_annotations(p, objects=objects)

    return reader
