"""QuPath projects in napari: open an image with its objects, push predictions back.

Everything here goes through :mod:`qupath_bridge.project` (paquo, imported
only when a project is opened), which needs a QuPath installation;
:func:`availability` says whether one is found, without starting Java. The
functions that touch a project run in worker threads (the widgets call them
through :func:`._worker.run_core`); :func:`image_layers` builds the layers on
the main thread. Coordinates are level-0 pixels of the image, as in QuPath.

Also the npe2 reader of ``.qpproj`` files (:func:`get_qpproj_reader`): the
project's first image with its annotations; it declines (returns ``None``)
where QuPath is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from magnipath._errors import MagnipathError
from magnipath._napari._layers import objects_to_layer_data
from magnipath._napari._reader import open_slide_for_viewing, slide_layer_data

LayerData = tuple[Any, dict, str]
AS_TYPES = ("annotation", "detection")
"""QuPath object types predictions can be written as."""


class QuPathProjectError(MagnipathError):
    """A QuPath project cannot be used as asked (no QuPath, missing slide, unknown image)."""


def availability() -> tuple[bool, str]:
    """``(True, where)`` when paquo finds a QuPath installation, else ``(False, why)``."""
    from qupath_bridge.project import qupath_available

    return qupath_available()


def _project(path: str | os.PathLike, mode: str = "r") -> Any:
    from qupath_bridge.project import Project

    return Project(path, mode=mode)  # type: ignore[arg-type]


def list_images(project: str | os.PathLike) -> list[Any]:
    """Every image of a project (:class:`qupath_bridge.project.ImageInfo`), read-only."""
    with _project(project) as p:
        return list(p.images)


def find_image(images: list[Any], slide_path: str | os.PathLike | None) -> Any | None:
    """The image of ``images`` whose slide file is ``slide_path`` (``None`` if none)."""
    if slide_path is None:
        return None
    want = Path(slide_path).resolve()
    for info in images:
        if info.path and Path(info.path).resolve() == want:
            return info
    return None


def load_image(project: str | os.PathLike, image: str | int, *,
               types: tuple[str, ...] = ("annotation",)) -> dict:
    """Open one image of a project with its objects (worker thread; no layers).

    Parameters
    ----------
    project : path
        ``project.qpproj`` or its folder.
    image : str or int
        Image name, entry id, slide file name or index.
    types : tuple of str
        Object types to read (``annotation``, ``detection``...).

    Returns
    -------
    dict
        ``info`` (ImageInfo), ``slide`` (open :class:`magnipath.slide.Slide`),
        ``mpp`` (float or None), ``objects`` (QuPathObjects, level-0 px).

    Raises
    ------
    QuPathProjectError
        The image's slide file is not where the project says.
    """
    with _project(project) as p:
        info = p.image_info(image)
        if not info.path or not Path(info.path).is_file():
            raise QuPathProjectError(
                f"image {info.name!r} of {p.path}: its slide is not at {info.path}; move it "
                "back or update the project's paths in QuPath")
        objects = p.read_objects(info.id, types=types)
    slide, mpp = open_slide_for_viewing(info.path, info.mpp)
    return {"info": info, "slide": slide, "mpp": mpp, "objects": objects,
            "project": str(Path(project).resolve())}


def image_layers(loaded: dict) -> list[LayerData]:
    """Layer data of :func:`load_image`'s result: the slide, then its objects."""
    info, mpp = loaded["info"], loaded["mpp"]
    layers = [slide_layer_data(loaded["slide"], mpp, name=info.name)]
    objs = objects_to_layer_data(loaded["objects"], mpp=mpp, name=f"{info.name} annotations",
                                 source=loaded.get("project"))
    for _, kwargs, _ in objs:
        kwargs["metadata"]["magnipath"]["qupath"] = {"project": loaded.get("project"),
                                                     "image": info.name, "id": info.id}
    return layers + objs


def push_objects(project: str | os.PathLike, image: str | int, objects: list, *,
                 as_type: str = "annotation") -> dict:
    """Write predicted objects into one image of a project (worker thread).

    Replaces the objects MagniPath wrote there before; everything else stays
    (see :meth:`qupath_bridge.project.Project.write_predictions`, which backs
    the image's data up first).

    Parameters
    ----------
    project : path
        ``project.qpproj`` or its folder.
    image : str or int
        Image name, entry id, slide file name or index.
    objects : list of QuPathObject
        Geometries in level-0 pixels of that image.
    as_type : {"annotation", "detection"}

    Returns
    -------
    dict
        The bridge's summary: ``image``, ``removed``, ``added``, ``backup``...
    """
    if as_type not in AS_TYPES:
        raise QuPathProjectError(f"QuPath object type {as_type!r}: choose one of {AS_TYPES}")
    with _project(project, "r+") as p:
        return p.write_predictions(image, objects, as_type=as_type)  # type: ignore[arg-type]


def read_project(path: str | os.PathLike) -> list[LayerData]:
    """Layer data of a ``.qpproj``: its first image with its annotations."""
    with _project(path) as p:
        entries = p.image_entries
        if not entries:
            raise QuPathProjectError(f"{p.path} holds no image")
    return image_layers(load_image(path, 0))


def get_qpproj_reader(path: str | list[str]) -> Any:
    """npe2 reader contribution for ``.qpproj``; ``None`` without QuPath or another file."""
    p = path[0] if isinstance(path, list | tuple) and len(path) == 1 else path
    if not isinstance(p, str | os.PathLike) or not str(p).lower().endswith(".qpproj"):
        return None
    if not availability()[0]:
        return None

    def reader(_: Any) -> list[LayerData]:
        return read_project(p)

    return reader
