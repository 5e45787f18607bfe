"""The QuPath dock widget: a QuPath project's images in napari, predictions back into it.

* **Open project**: lists the project's images (name, size, µm/px);
* **Load image**: adds the image's slide (lazy multiscale) and its annotations
  (Shapes / Points, classes and colours kept);
* **Push predictions**: writes a Shapes layer's objects (e.g. the Inference
  widget's predicted objects) into the chosen image as annotations or
  detections, replacing only what MagniPath wrote there before (the image's
  data are backed up first).

It needs a QuPath installation that paquo finds (``PAQUO_QUPATH_DIR``);
without one, every control is disabled and the widget says why (the reason
from :func:`qupath_bridge.project.qupath_available`). The project work runs in
thread workers (:mod:`._qupath`); layers are added on the main thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from napari.layers import Image, Points, Shapes
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError
from magnipath._napari._jobs import JobWidget, layer_choices, path_value, wrap_label
from magnipath._napari._predictions import add_layer_data
from magnipath._napari._qupath import (
    AS_TYPES,
    availability,
    image_layers,
    list_images,
    load_image,
    push_objects,
)
from magnipath._napari._to_objects import layer_to_objects
from magnipath._napari._worker import CoreRun

if TYPE_CHECKING:
    import napari


def _describe(info: Any) -> str:
    size = f"{info.width} x {info.height} px" if info.width else "slide not found"
    mpp = f", {info.mpp:.4g} µm/px" if info.mpp else ""
    return f"{info.name} ({size}{mpp})"


class QuPathWidget(JobWidget):
    """Dock widget: open a QuPath project, load an image, push predictions into it.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).

    Attributes
    ----------
    available : bool
        Whether QuPath was found (else every control is disabled).
    reason : str
        Where QuPath is, or why it cannot be used.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self.availability = Label(value="")
        self.project = FileEdit(label="QuPath project", mode="r", filter="*.qpproj")
        self.open_button = PushButton(text="Open project")
        # choices come from a callable: reset_choices() (after "Load image", or napari's
        # layer events) calls it again instead of restoring the empty list it started with
        self._image_choices: list[tuple[str, Any]] = []
        self.images = ComboBox(label="Image", choices=self._get_image_choices)
        self.load_button = PushButton(text="Load image")
        self.layer = ComboBox(label="Predictions layer", nullable=True,
                              choices=layer_choices(napari_viewer, Shapes, Points))
        self.slide = ComboBox(label="On slide", nullable=True,
                              choices=layer_choices(napari_viewer, Image),
                              tooltip="The slide layer the predictions were drawn on (their "
                                      "coordinates are mapped onto its level 0)")
        self.as_type = ComboBox(label="Write as", choices=AS_TYPES, value=AS_TYPES[0])
        self.push_button = PushButton(text="Push predictions")
        self.loaded: list[Any] = []
        super().__init__(napari_viewer, "QuPath", [
            self.availability, self.project,
            Container(widgets=[self.open_button, self.load_button], layout="horizontal",
                      labels=False),
            self.images, self.layer, self.slide, self.as_type, self.push_button])
        wrap_label(self.availability)
        self.available, self.reason = availability()
        self.controls = [self.project, self.open_button, self.images, self.load_button,
                         self.layer, self.slide, self.as_type, self.push_button]
        for w in self.controls:
            w.enabled = self.available
        self.availability.value = (self.reason if self.available else
                                   f"QuPath is not available: {self.reason}. Install QuPath "
                                   "0.5/0.6 and set PAQUO_QUPATH_DIR, then reopen this panel.")
        self.open_button.changed.connect(self.open_project)
        self.load_button.changed.connect(self.load_image)
        self.push_button.changed.connect(self.push)

    def _get_image_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return list(self._image_choices)

    def set_images(self, images: list[Any]) -> None:
        """Offer ``images`` (:class:`~qupath_bridge.project.ImageInfo`) in the Image combo."""
        self._image_choices = [(_describe(i), i) for i in images]
        self.images.reset_choices()

    def _check(self) -> None:
        if not self.available:
            raise MagnipathError(f"QuPath is not available: {self.reason}")

    def _project_image(self, missing: str) -> tuple[Any, Any]:
        """The project path and the chosen image; ``missing`` says what to do without one."""
        self._check()
        project = path_value(self.project, "QuPath project", must_exist=True)
        info = self.images.value
        if info is None:
            raise MagnipathError(f"Image: {missing}")
        return project, info

    # -- actions ----------------------------------------------------------------------------------
    def open_project(self, *_: Any) -> CoreRun | None:
        """List the project's images (Open project)."""
        if self.busy():
            return None
        try:
            self._check()
            project = path_value(self.project, "QuPath project", must_exist=True)
        except MagnipathError as e:
            show_error(str(e))
            return None

        def done(images: list) -> None:
            self.set_images(images)
            self.say(f"{len(images)} images in {project}")

        return self.start(lambda progress, cancel: list_images(project), "QuPath: open project",
                          done, busy=self.controls)

    def load_image(self, *_: Any) -> CoreRun | None:
        """Add the chosen image's slide and annotations as layers (Load image)."""
        if self.busy():
            return None
        try:
            project, info = self._project_image("open the project and pick an image first")
        except MagnipathError as e:
            show_error(str(e))
            return None

        def done(loaded: dict) -> None:
            layers = [add_layer_data(self._viewer, d) for d in image_layers(loaded)]
            self.loaded = layers
            self.reset_choices()
            self.slide.value = layers[0]
            self.say(f"{info.name}: {len(loaded['objects'])} objects loaded")
            show_info(f"QuPath: {self.message}")

        return self.start(lambda progress, cancel: load_image(project, info.id),
                          "QuPath: load image", done, busy=self.controls)

    def push(self, *_: Any) -> CoreRun | None:
        """Write the predictions layer's objects into the chosen image (Push predictions)."""
        if self.busy():
            return None
        try:
            project, info = self._project_image("open the project and pick the image to "
                                                "write to")
            layer = self.layer.value
            if layer is None:
                raise MagnipathError("Predictions layer: pick a Shapes layer (e.g. the "
                                     "Inference widget's objects)")
            objects = layer_to_objects(layer, self.slide.value)
            as_type = self.as_type.value
        except MagnipathError as e:
            show_error(str(e))
            return None

        def done(summary: dict) -> None:
            self.say(f"{summary.get('added')} objects written into {summary.get('image')!r} "
                     f"as {as_type}s ({summary.get('removed')} earlier MagniPath objects "
                     "replaced)")
            show_info(f"QuPath: {self.message}")

        return self.start(
            lambda progress, cancel: push_objects(project, info.id, objects, as_type=as_type),
            "QuPath: push predictions", done, busy=self.controls)
