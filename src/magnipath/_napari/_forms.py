"""Form fields the dock widgets share: the slide picker and the region picker.

* :func:`slide_field`: the "Slide image" choice (the viewer's image layers);
* :class:`RegionFields`: the "Region" choice (whole slide / current view /
  drawn shapes) with its "Region shapes" layer choice, shown only for drawn
  shapes, and :meth:`RegionFields.box`, the chosen region as a level-0 box
  ``(x, y, width, height)`` (``None`` for the whole slide; see
  :mod:`._regions`).

The fields are magicgui widgets; a widget keeps them as its own attributes
(``widget.image``, ``widget.region``, ``widget.shapes``) so scripts and tests
set them as before.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox
from napari.layers import Image, Shapes

from magnipath._errors import MagnipathError
from magnipath._napari._jobs import layer_choices
from magnipath._napari._regions import shapes_box, view_box
from magnipath.types import Box

REGIONS = ("whole slide", "current view", "drawn shapes")
"""Region choices; "drawn shapes" = bounding box of the selected shapes (all if none)."""


def slide_field(viewer: Any) -> ComboBox:
    """The "Slide image" choice: the image layers of ``viewer``."""
    return ComboBox(label="Slide image", choices=layer_choices(viewer, Image))


class RegionFields:
    """The "Region" choice of a widget and its "Region shapes" layer choice.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Whose Shapes layers are offered and whose view "current view" means.
    shapes_tooltip : str
        Tooltip of the "Region shapes" choice.

    Attributes
    ----------
    region : magicgui.widgets.ComboBox
        One of :data:`REGIONS`.
    shapes : magicgui.widgets.ComboBox
        The Shapes layer holding the drawn region; visible only for "drawn shapes".
    """

    def __init__(self, viewer: Any, shapes_tooltip: str | None = None) -> None:
        self._viewer = viewer
        self.region = ComboBox(label="Region", choices=REGIONS, value=REGIONS[0])
        self.shapes = ComboBox(label="Region shapes", nullable=True,
                               choices=layer_choices(viewer, Shapes), tooltip=shapes_tooltip)
        self.region.changed.connect(self.toggle)

    def toggle(self, *_: Any) -> None:
        """Show the shapes choice only for "drawn shapes" (call once the form is built)."""
        self.shapes.visible = self.region.value == REGIONS[2]

    def box(self, image: Any) -> Box | None:
        """Level-0 ``(x, y, width, height)`` of the chosen region of ``image``'s slide.

        Returns ``None`` for the whole slide; the current view and the drawn
        shapes are clipped to the slide (:func:`._regions.view_box`,
        :func:`._regions.shapes_box`).

        Raises
        ------
        MagnipathError
            "drawn shapes" without a Shapes layer picked, or a region off the slide.
        """
        if self.region.value == REGIONS[1]:
            return view_box(self._viewer, image)
        if self.region.value == REGIONS[2]:
            if self.shapes.value is None:
                raise MagnipathError("Region shapes: draw a rectangle in a Shapes layer over "
                                     "the slide and pick that layer")
            return shapes_box(self.shapes.value, image)
        return None
