"""Scripted napari sessions: what the widgets do, as plain calls (a script or the console).

Each call runs one step in the calling thread, with the same core functions
as the widgets and the ``magnipath`` command line, and returns the layers it
adds (or the core's summary when it adds none). Coordinates are level-0
pixels of the slide, boxes ``(x, y, width, height)``; layers sit in µm
(see ``docs/napari.md``).

>>> import napari
>>> from magnipath._napari import api
>>> viewer = napari.Viewer()                                          # doctest: +SKIP
>>> slide, truth, *_ = api.open_sample(viewer)                        # doctest: +SKIP
>>> api.tile(slide, truth, "dataset", magnification=10, tile_size=128)  # doctest: +SKIP
>>> api.train("dataset", "model", arch="dsmn-s2", epochs=5)           # doctest: +SKIP
>>> labels, objects = api.infer(slide, "model", region="view")        # doctest: +SKIP
>>> api.save_geojson(objects, "predictions.geojson")                  # doctest: +SKIP

The calls block until done; pass ``progress=`` (a callable receiving
:class:`magnipath.progress.Progress` events) to follow them, ``cancel=`` (a
callable returning ``True`` to stop) to stop them. For work in the background
with napari's activity bar, use the dock widgets (Plugins > MagniPath).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from magnipath._errors import MagnipathError, ModelError, TilingError
from magnipath._napari._jobs import slide_of
from magnipath._napari._predictions import (
    add_layer_data,
    default_output_root,
    objects_layer_data,
    prediction_layer_data,
    run_inference,
)
from magnipath._napari._to_objects import layer_class_colors, layer_class_names, layer_to_objects
from magnipath.progress import CancelCallback, ProgressCallback
from magnipath.types import Box

__all__ = ["infer", "open_sample", "open_slide_in_viewer", "prefer_magnipath_reader",
           "push_to_qupath", "qupath_available", "save_geojson", "tile", "train",
           "use_magnipath_for_slides"]

PLUGIN_NAME = "napari-magnipath"
"""Our npe2 plugin (distribution) name, as napari's reader preferences spell it."""


def prefer_magnipath_reader(patterns: Sequence[str] | None = None, *,
                            settings: Any = None) -> dict[str, str]:
    """Make MagniPath napari's preferred reader for slide files (no 'choose a reader' dialog).

    npe2 manifests cannot declare a priority, so when napari's built-in reader
    and MagniPath both claim ``*.tif`` napari asks which to use. This records
    the choice in napari's settings (``plugins.extension2reader``, the same
    as ticking "Remember my choice" in that dialog; undo it in
    File > Preferences > Plugins).

    Parameters
    ----------
    patterns : sequence of str, optional
        File-name patterns; default the whole-slide ones (``*.tif``, ``*.tiff``,
        ``*.svs``, ``*.ome.tif``, ``*.ome.tiff`` and the openslide formats), not
        PNG/JPEG (so ordinary pictures keep napari's reader unless listed).
    settings : napari.settings.NapariSettings, optional
        Default: napari's (persisted) settings.

    Returns
    -------
    dict
        The resulting pattern -> plugin mapping.
    """
    from magnipath._napari._reader import OPENSLIDE_SUFFIXES, SLIDE_SUFFIXES

    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    if patterns is None:
        patterns = [f"*{s}" for s in SLIDE_SUFFIXES + OPENSLIDE_SUFFIXES]
    mapping = dict(settings.plugins.extension2reader)
    mapping.update({str(p): PLUGIN_NAME for p in patterns})
    settings.plugins.extension2reader = mapping
    return dict(settings.plugins.extension2reader)


def use_magnipath_for_slides() -> None:
    """Menu command (File > IO Utilities): make MagniPath the reader of slide files.

    Calls :func:`prefer_magnipath_reader` with its default patterns on napari's
    settings and says what it did in a notification.
    """
    from napari.utils.notifications import show_info

    from magnipath._napari._reader import OPENSLIDE_SUFFIXES, SLIDE_SUFFIXES

    patterns = [f"*{s}" for s in SLIDE_SUFFIXES + OPENSLIDE_SUFFIXES]
    prefer_magnipath_reader(patterns)
    show_info(f"MagniPath now opens {', '.join(patterns)} without asking (undo in File > "
              "Preferences > Plugins, 'File extension readers').")


def _viewer(viewer: Any) -> Any:
    if viewer is not None:
        return viewer
    import napari

    current = napari.current_viewer()
    if current is None:
        raise MagnipathError("no napari viewer: pass viewer=napari.Viewer() (or open one first)")
    return current


def _add(viewer: Any, data: list) -> list:
    return [add_layer_data(viewer, d, replace=False) for d in data]


def open_slide_in_viewer(path: str | os.PathLike, viewer: Any = None, *,
                         annotations: str | os.PathLike | Sequence[str | os.PathLike] = (),
                         mpp: float | None = None) -> list:
    """Open a slide (lazy multiscale, µm) and QuPath GeoJSON files over it.

    Parameters
    ----------
    path : path
        The slide (any format MagniPath reads).
    viewer : napari.viewer.Viewer, optional
        Default: the current viewer.
    annotations : path or paths
        QuPath GeoJSON files of this slide (level-0 pixels).
    mpp : float, optional
        Level-0 µm per pixel, overriding the file's metadata.

    Returns
    -------
    list of napari layers
        The image layer, then the Shapes / Points layers of the annotations.
    """
    from magnipath._napari._reader import read_annotations, read_slide

    viewer = _viewer(viewer)
    image_data = read_slide(path, mpp=mpp)
    known = image_data[0][1]["metadata"]["magnipath"]["mpp"]
    files = [annotations] if isinstance(annotations, str | os.PathLike) else list(annotations)
    layers = _add(viewer, image_data)
    for f in files:
        layers += _add(viewer, read_annotations(f, mpp=known))
    return layers


def open_sample(viewer: Any = None) -> list:
    """Open the MagniPath synthetic sample slide with its ground truth (made once, cached).

    Returns
    -------
    list of napari layers
        Slide, ground truth (Shapes), mitoses (Points), partial annotations (hidden).
    """
    from magnipath._napari._sample_data import make_sample_slide

    return _add(_viewer(viewer), make_sample_slide())


def tile(image: Any, annotations: Any, out: str | os.PathLike, *,
         magnification: float = 20.0, tile_size: int = 256, overlap: float = 0.0,
         context: str | Sequence[float] = "none", class_map: Any = None,
         min_tissue: float = 0.05, min_labelled: float = 0.0,
         require_classes: Sequence[str] = (), progress: ProgressCallback | None = None,
         cancel: CancelCallback | None = None) -> dict:
    """Tile the slide of an image layer with the annotations of a Shapes layer.

    Parameters
    ----------
    image : napari.layers.Image
        A slide layer opened by MagniPath.
    annotations : napari.layers.Shapes or Points, or None
        Its annotations (mapped onto the slide's level 0 through both layers'
        scale and translate).
    out : path
        Dataset folder to write (``docs/dataset-format.md``).
    magnification : float
        Target magnification (x); µm per pixel = 10 / magnification.
    tile_size : int
        Side of the target tile and of every input, target pixels.
    overlap : float
        Fraction of the side neighbouring tiles share.
    context : {"none", "dmmn"} or sequence of float
        Context inputs: none; Ho et al.'s half and quarter magnification;
        or the magnifications (x) of the context inputs.
    class_map : ClassMap or str, optional
        ``"Name=index,..."`` or a :class:`magnipath.classes.ClassMap`; default
        the layer's classes in order from 0 with their colours (as the Tiling
        widget fills it).
    min_tissue, min_labelled : float
        Tile filters (fractions of the target tile).
    require_classes : sequence of str
        Keep only tiles with a pixel of one of these classes.
    progress, cancel : callables, optional

    Returns
    -------
    dict
        The summary of :func:`magnipath.tiling.make_dataset` (``n_tiles``, ``dataset``...).
    """
    from magnipath._napari._tiling_widget import CONTEXT_PRESETS, make_geometry
    from magnipath.classes import ClassMap
    from magnipath.tiling import SlideSource, TilingConfig, make_dataset

    path, mpp = slide_of(image, "image", TilingError)
    if isinstance(context, str):
        key = context.strip().lower()
        if key not in ("none", "dmmn"):
            raise TilingError(f"context {context!r}: give 'none', 'dmmn' or magnifications")
        geometry = make_geometry(magnification, tile_size,
                                 CONTEXT_PRESETS[1] if key == "dmmn" else CONTEXT_PRESETS[0])
    else:
        geometry = make_geometry(magnification, tile_size, CONTEXT_PRESETS[2],
                                 ",".join(str(float(m)) for m in context))
    config = TilingConfig(geometry=geometry, overlap=float(overlap), min_tissue=min_tissue,
                          min_labelled=min_labelled, require_classes=tuple(require_classes),
                          workers=1)
    colors = layer_class_colors(annotations) if annotations is not None else {}
    if class_map is None and annotations is not None and layer_class_names(annotations):
        class_map = ClassMap.from_names(layer_class_names(annotations), colors=colors)
    elif isinstance(class_map, str):
        class_map = ClassMap.parse(class_map, colors=colors)
    objects = layer_to_objects(annotations, image) if annotations is not None else None
    return make_dataset([SlideSource(path=path, annotations=objects, mpp=mpp)], out,
                        class_map=class_map, config=config, progress=progress, cancel=cancel)


def train(dataset: str | os.PathLike, out: str | os.PathLike, config: Any = None, *,
          preset: str | None = None, resume: bool = False, overwrite: bool = False,
          progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
          **settings: Any) -> dict:
    """Train a model on a tile dataset (what the Training widget does).

    Parameters
    ----------
    dataset : path
        A tile dataset folder.
    out : path
        The model folder to write.
    config : magnipath.train.TrainConfig, optional
        The whole configuration; else built from ``preset`` and ``settings``.
    preset : {"dmmn", "tls"}, optional
        A paper's settings; ``settings`` win over it.
    resume, overwrite : bool
        Continue the run in ``out`` / replace a model in ``out``.
    progress, cancel : callables, optional
    **settings
        :class:`magnipath.train.TrainConfig` fields, e.g. ``arch="dsmn-s2"``,
        ``epochs=5``, ``arch_kwargs={"base": 8}``, ``device="cuda"``.

    Returns
    -------
    dict
        The summary of :func:`magnipath.train.train` (``model_dir``, ``best``...).
    """
    from magnipath.train import TrainConfig
    from magnipath.train import train as core_train

    if config is not None and (preset or settings):
        raise ModelError("give either config= or preset=/settings, not both")
    if config is None and not resume:
        config = (TrainConfig.preset(preset, **settings) if preset
                  else TrainConfig().replace(**settings))
    return core_train(dataset, out, config, resume=resume, overwrite=overwrite,
                      progress=progress, cancel=cancel)


def infer(image: Any, model: str | os.PathLike, *, viewer: Any = None,
          region: Box | str | Any | None = None, out_dir: str | os.PathLike | None = None,
          device: str = "auto", batch_size: int = 8, tissue_mask: bool = True,
          classes: Sequence[str] | None = None, min_area_um2: float = 0.0,
          overwrite: bool = False, progress: ProgressCallback | None = None,
          cancel: CancelCallback | None = None) -> list:
    """Run a model over the slide of an image layer; add the label map and the objects.

    Parameters
    ----------
    image : napari.layers.Image
        A slide layer opened by MagniPath.
    model : path
        A model folder (``magnipath train`` / the Training widget).
    viewer : napari.viewer.Viewer, optional
        Where to add the layers; default the current viewer.
    region : box, "view", Shapes layer or None
        Level-0 ``(x, y, width, height)``; ``"view"``: what the canvas shows;
        a Shapes layer: the bounding box of its selected shapes (all if none);
        ``None``: the whole slide.
    out_dir : path, optional
        Root folder of predictions (default ``<MagniPath cache>/predictions``).
    device, batch_size, tissue_mask, overwrite
        As :class:`magnipath.infer.InferConfig`.
    classes : sequence of str, optional
        Classes to turn into objects (default all but "Background").
    min_area_um2 : float
        Smallest object kept, µm².
    progress, cancel : callables, optional

    Returns
    -------
    [Labels, Shapes]
        The lazy multiscale label map (class colours) and the predicted objects
        (measurements as features), both over the slide.
    """
    from magnipath._napari._regions import shapes_box, view_box
    from magnipath.infer import InferConfig

    viewer = _viewer(viewer)
    path, mpp = slide_of(image, "image")
    if isinstance(region, str):
        if region != "view":
            raise MagnipathError(f"region {region!r}: give a box, 'view', a Shapes layer or None")
        region = view_box(viewer, image)
    elif region is not None and hasattr(region, "selected_data"):
        region = shapes_box(region, image)
    config = InferConfig(region=region, device=device, batch_size=batch_size,
                         tissue_mask=tissue_mask, overwrite=overwrite)
    out = run_inference(path, model, out_dir or default_output_root(), config, mpp=mpp,
                        classes=list(classes) if classes else None, min_area_um2=min_area_um2,
                        progress=progress, cancel=cancel)
    store = out["result"].store
    stem = Path(store).stem
    labels = add_layer_data(viewer, prediction_layer_data(store, name=f"{stem} prediction",
                                                          mpp=mpp))
    objects = add_layer_data(viewer, objects_layer_data(out["objects"], mpp=mpp,
                                                        name=f"{stem} objects",
                                                        source=str(store)))
    return [labels, objects]


def save_geojson(layer: Any, path: str | os.PathLike, image: Any = None) -> Path:
    """Write a Shapes / Points layer as QuPath GeoJSON (level-0 pixels of its slide).

    Parameters
    ----------
    layer : napari.layers.Shapes or Points
    path : path
        Output file (``.geojson``; ``.gz`` compresses).
    image : napari.layers.Image, optional
        The slide the layer is drawn on (default: the layer's own metadata).
    """
    from qupath_bridge.geojson import write_geojson

    return write_geojson(layer_to_objects(layer, image), path)


def qupath_available() -> tuple[bool, str]:
    """``(True, where)`` when a QuPath installation is found, else ``(False, why)``."""
    from magnipath._napari._qupath import availability

    return availability()


def push_to_qupath(layer: Any, project: str | os.PathLike, image: str | int | None = None, *,
                   slide: Any = None, as_type: str = "annotation") -> dict:
    """Write a Shapes layer's objects into an image of a QuPath project (needs QuPath).

    Parameters
    ----------
    layer : napari.layers.Shapes or Points
        E.g. the objects returned by :func:`infer`.
    project : path
        ``project.qpproj`` or its folder.
    image : str or int, optional
        Image name, entry id, slide file name or index; default the image whose
        slide file is ``slide``'s.
    slide : napari.layers.Image, optional
        The slide layer ``layer`` lies on (maps coordinates; finds the image).
    as_type : {"annotation", "detection"}

    Returns
    -------
    dict
        ``image``, ``added``, ``removed``, ``backup``... (the bridge's summary).
    """
    from magnipath._napari._qupath import (
        QuPathProjectError,
        find_image,
        list_images,
        push_objects,
    )

    ok, reason = qupath_available()
    if not ok:
        raise QuPathProjectError(f"QuPath is not available: {reason}")
    if image is None:
        if slide is None:
            raise QuPathProjectError("give image= (its name in the project) or slide=")
        info = find_image(list_images(project), slide_of(slide)[0])
        if info is None:
            raise QuPathProjectError(f"{project} has no image of {slide_of(slide)[0]}")
        image = info.id
    return push_objects(project, image, layer_to_objects(layer, slide), as_type=as_type)
