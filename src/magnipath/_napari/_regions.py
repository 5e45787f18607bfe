"""Regions of a slide chosen in the viewer, as level-0 boxes ``(x, y, width, height)``.

* :func:`view_box`: the part of the slide the canvas shows now (camera centre,
  zoom and canvas size), clipped to the slide;
* :func:`shapes_box`: the bounding box of the selected shapes of a Shapes layer
  (all of them when none is selected), e.g. a rectangle drawn over the slide.

Boxes are whole level-0 pixels (outwards rounded) inside the slide. The
conversions go through the layers' ``scale`` and ``translate`` only
(:func:`._to_objects.transform_to_image`), so any layer placed in µm lines up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from magnipath._errors import MagnipathError
from magnipath._napari._to_objects import transform_to_image
from magnipath.types import Box


def slide_size(image_layer: Any) -> tuple[int, int]:
    """Level-0 ``(width, height)`` of a slide image layer (its first level)."""
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    h, w = data.shape[:2]
    return int(w), int(h)


def _clip(x0: float, y0: float, x1: float, y1: float, width: int, height: int,
          what: str) -> Box:
    x0, y0 = max(0, math.floor(x0 + 1e-6)), max(0, math.floor(y0 + 1e-6))
    x1, y1 = min(width, math.ceil(x1 - 1e-6)), min(height, math.ceil(y1 - 1e-6))
    if x1 <= x0 or y1 <= y0:
        raise MagnipathError(f"Region: {what} does not overlap the slide "
                             f"({width} x {height} level-0 px); pan to the slide or draw "
                             "the rectangle on it")
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def world_to_level0(image_layer: Any, world_yx: np.ndarray) -> np.ndarray:
    """World ``(y, x)`` points -> level-0 ``(y, x)`` of the slide (pixel edges on integers)."""
    s = np.asarray(image_layer.scale, dtype=float)[-2:]
    t = np.asarray(image_layer.translate, dtype=float)[-2:]
    return (np.asarray(world_yx, dtype=float).reshape(-1, 2) - t) / s + 0.5


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, else ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def canvas_size(viewer: Any) -> tuple[int, int]:
    """Canvas ``(height, width)`` in screen pixels (``viewer.canvas.size`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    size = getattr(canvas, "size", None) if canvas is not None else None
    if size is None:
        size = viewer._canvas_size  # napari < 0.9
    return (int(size[0]), int(size[1]))


def view_box(viewer: Any, image_layer: Any, size: tuple[int, int] | None = None) -> Box:
    """Level-0 box of the slide shown on the canvas now.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        A 2D view (its camera centre and zoom).
    image_layer : napari.layers.Image
        The slide layer (world = level-0 px * scale + translate).
    size : (int, int), optional
        Canvas ``(height, width)`` in screen pixels; default the viewer's canvas.

    Returns
    -------
    Box
        ``(x, y, width, height)`` in level-0 pixels, clipped to the slide.
    """
    size = canvas_size(viewer) if size is None else size
    cam = camera(viewer)
    zoom = float(cam.zoom)
    centre = np.asarray(cam.center, dtype=float)[-2:]
    half = np.asarray(size, dtype=float) / zoom / 2.0
    corners = world_to_level0(image_layer, np.stack([centre - half, centre + half]))
    (y0, x0), (y1, x1) = corners
    w, h = slide_size(image_layer)
    return _clip(x0, y0, x1, y1, w, h, "the current view")


def shapes_box(layer: Any, image_layer: Any) -> Box:
    """Level-0 bounding box of the selected shapes (all when none is selected).

    Parameters
    ----------
    layer : napari.layers.Shapes
        Holding the drawn region (any shape type; its bounding box is used).
    image_layer : napari.layers.Image
        The slide the box refers to.

    Raises
    ------
    MagnipathError
        When the layer holds no shape or the box misses the slide.
    """
    if len(layer.data) == 0:
        raise MagnipathError(f"Region: layer {layer.name!r} holds no shape; draw a rectangle "
                             "on the slide first")
    chosen = sorted(layer.selected_data) or range(len(layer.data))
    scale, offset = transform_to_image(layer, image_layer)
    pts = np.concatenate([np.asarray(layer.data[i], dtype=float)[:, -2:] for i in chosen])
    yx = pts * scale + offset
    y0, x0 = yx.min(axis=0)
    y1, x1 = yx.max(axis=0)
    w, h = slide_size(image_layer)
    return _clip(x0, y0, x1, y1, w, h, f"the shapes of {layer.name!r}")
