"""The Tiling dock widget: the ``magnipath tile`` command, point and click.

The widget only collects values. On the main thread it turns the chosen
annotations layer into QuPath objects on the slide's level 0
(:func:`._layers.layer_to_objects`) and the fields into a
:class:`magnipath.tiling.TilingConfig`; then it runs one core call in a thread
worker (:class:`._jobs.JobWidget`, :func:`._worker.run_core`):

* **Preview grid**: :func:`magnipath.tiling.tile_grid` and
  :func:`magnipath.tissue.detect_tissue`; adds a Shapes layer of the target
  tiles that pass the tissue filter and a Labels layer of the tissue mask;
* **Run**: :func:`magnipath.tiling.make_dataset` into the dataset folder.

Every option means what the CLI option of the same name means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Points, Shapes
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError, TilingError
from magnipath._napari._forms import slide_field
from magnipath._napari._frames import raster_frame, vector_frame
from magnipath._napari._jobs import JobWidget, layer_choices, path_value, slide_of
from magnipath._napari._layers import layer_class_colors, layer_class_names, layer_to_objects
from magnipath._napari._worker import CoreRun
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry
from magnipath.tiling import SlideSource, TilingConfig

if TYPE_CHECKING:
    import napari

CONTEXT_PRESETS = ("none", "DMMN (x1/2, x1/4)", "custom")
"""Context inputs: none; Ho et al.'s DMMN (half and quarter magnification); custom list."""
MAX_PREVIEW_TILES = 5000
"""At most this many tile rectangles are drawn by Preview grid (evenly sampled beyond)."""
GRID_LAYER = "tile grid"
MASK_LAYER = "tissue mask"


def _parse_floats(text: str, field: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as e:
        raise TilingError(f"{field}: give numbers separated by commas, e.g. '10, 5'") from e


def make_geometry(magnification: float, tile_size: int, preset: str,
                  context: str = "") -> TileGeometry:
    """Tile geometry of the widget's fields (target magnification, size, context preset).

    Parameters
    ----------
    magnification : float
        Target magnification (10 / µm per pixel).
    tile_size : int
        Side of the target tile and of every input, in pixels.
    preset : str
        One of :data:`CONTEXT_PRESETS`.
    context : str
        Context magnifications for ``"custom"``, e.g. ``"10, 5"``.
    """
    if not magnification > 0:
        raise TilingError(f"Magnification must be positive, got {magnification}")
    mpp = 10.0 / magnification
    if preset == CONTEXT_PRESETS[1]:
        return TileGeometry.dmmn(mpp=mpp, size=int(tile_size))
    if preset == CONTEXT_PRESETS[2]:
        mags = _parse_floats(context, "Context magnifications")
        if not mags or any(m <= 0 for m in mags):
            raise TilingError("Context magnifications: give positive magnifications, "
                              "e.g. '10, 5' for 10x and 5x context inputs")
        return TileGeometry.with_context(mpp, int(tile_size), [10.0 / m for m in mags])
    return TileGeometry.single(mpp, int(tile_size))


class TilingWidget(JobWidget):
    """Dock widget: tile the slide of an image layer with the annotations of a Shapes layer.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self.image = slide_field(napari_viewer)
        self.annotations = ComboBox(label="Annotations", nullable=True,
                                    choices=layer_choices(napari_viewer, Shapes, Points))
        self.classes = LineEdit(label="Classes", tooltip=(
            "Class map 'Name=index,...' (e.g. 'Stroma=0,Tumor=1'); filled from the "
            "annotation classes; empty = derive it from the annotations"))
        self.magnification = FloatSpinBox(label="Magnification (x)", value=20.0, min=0.1,
                                          max=100.0, step=0.5,
                                          tooltip="Target magnification = 10 / (µm per pixel)")
        self.tile_size = SpinBox(label="Tile size (px)", value=256, min=16, max=4096, step=16,
                                 tooltip="Side of the target tile in target pixels")
        self.overlap = FloatSpinBox(label="Overlap (fraction)", value=0.0, min=0.0, max=0.95,
                                    step=0.05, tooltip="Fraction of the side neighbours share")
        self.preset = ComboBox(label="Context", choices=CONTEXT_PRESETS, value="none",
                               tooltip="Concentric context inputs around each target tile")
        self.context = LineEdit(label="Context magnifications", value="10, 5",
                                tooltip="For 'custom': magnifications of the context inputs (x)")
        self.min_tissue = FloatSpinBox(label="Min tissue (fraction)", value=0.05, min=0.0,
                                       max=1.0, step=0.05)
        self.min_labelled = FloatSpinBox(label="Min labelled (fraction)", value=0.0, min=0.0,
                                         max=1.0, step=0.01,
                                         tooltip="Keep tiles labelled above this fraction "
                                                 "(DMMN: 0.01)")
        self.require = LineEdit(label="Require classes", tooltip=(
            "Keep only tiles with a pixel of one of these classes (comma separated)"))
        self.output = FileEdit(label="Dataset folder", mode="d")
        self.preview_button = PushButton(text="Preview grid")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        super().__init__(napari_viewer, "Tiling", [
            self.image, self.annotations, self.classes, self.magnification, self.tile_size,
            self.overlap, self.preset, self.context, self.min_tissue, self.min_labelled,
            self.require, self.output,
            Container(widgets=[self.preview_button, self.run_button, self.cancel_button],
                      layout="horizontal", labels=False)])
        self.annotations.changed.connect(self._fill_classes)
        self.preset.changed.connect(self._toggle_context)
        self.preview_button.changed.connect(self.preview)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._toggle_context()
        self.reset_choices()
        self._fill_classes()

    # -- choices ------------------------------------------------------------------------
    def reset_choices(self, *args: Any) -> None:
        """Refresh the layer choices; pick the only Shapes layer when none is chosen."""
        super().reset_choices(*args)
        if self.annotations.value is None:
            shapes = [lay for lay in self._viewer.layers if isinstance(lay, Shapes)]
            if len(shapes) == 1:
                self.annotations.value = shapes[0]

    def _fill_classes(self, *_: Any) -> None:
        layer = self.annotations.value
        if layer is not None:
            names = layer_class_names(layer)
            self.classes.value = ",".join(f"{n}={i}" for i, n in enumerate(names))

    def _toggle_context(self, *_: Any) -> None:
        self.context.visible = self.preset.value == CONTEXT_PRESETS[2]

    # -- values -> core arguments (main thread) ----------------------------------------------
    def _inputs(self) -> tuple[Any, Path, float | None, TilingConfig]:
        """The slide layer, its file and mpp, and the validated config (main thread)."""
        image = self.image.value
        path, mpp = slide_of(image, error=TilingError)
        config = self._config()
        config.validate()
        return image, path, mpp, config

    def _config(self) -> TilingConfig:
        geometry = make_geometry(self.magnification.value, self.tile_size.value,
                                 self.preset.value, self.context.value)
        require = tuple(s.strip() for s in self.require.value.split(",") if s.strip())
        return TilingConfig(geometry=geometry, overlap=float(self.overlap.value),
                            min_tissue=float(self.min_tissue.value),
                            min_labelled=float(self.min_labelled.value),
                            require_classes=require, workers=1)

    def _class_map(self) -> ClassMap | None:
        text = self.classes.value.strip()
        if not text:
            return None
        layer = self.annotations.value
        colors = layer_class_colors(layer) if layer is not None else {}
        return ClassMap.parse(text, colors=colors)

    # -- actions --------------------------------------------------------------------------
    def preview(self, *_: Any) -> CoreRun | None:
        """Compute the tile grid and the tissue mask; add them as layers (Preview grid)."""
        if self.busy():
            return None
        try:
            image, path, mpp, config = self._inputs()
        except MagnipathError as e:
            show_error(str(e))
            return None
        from magnipath.tiling import stride_from

        stride = stride_from(config.geometry.target_size, config.stride, config.overlap)

        def job(progress: Any, cancel: Any) -> dict:
            from magnipath.progress import check_cancel, report
            from magnipath.slide import open_slide
            from magnipath.tiling import tile_grid
            from magnipath.tissue import detect_tissue

            with open_slide(path, mpp=mpp) as slide:
                boxes = tile_grid(slide.width, slide.height, slide.mpp, config.geometry, stride)
                report(progress, "tissue", 0, 1)
                check_cancel(cancel)
                mask = detect_tissue(slide, mpp=config.tissue_mpp)
                fractions = np.asarray(mask.fractions(boxes), dtype=float)
                report(progress, "tissue", 1, 1)
                return {"boxes": boxes, "tissue": fractions, "mask": mask}

        return self._start(job, "Tiling preview",
                           lambda r: self._show_preview(r, config, mpp, image))

    def _show_preview(self, result: dict, config: TilingConfig, mpp: float | None,
                      image: Any) -> None:
        keep = result["tissue"] >= config.min_tissue
        boxes, tissue = result["boxes"][keep], result["tissue"][keep]
        n_total, n_keep = len(result["boxes"]), len(boxes)
        if n_keep > MAX_PREVIEW_TILES:
            idx = np.linspace(0, n_keep - 1, MAX_PREVIEW_TILES).round().astype(int)
            boxes, tissue = boxes[idx], tissue[idx]
            show_info(f"Tiling preview: drawing {MAX_PREVIEW_TILES} of {n_keep} tiles.")
        rects = [np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]])
                 for x, y, w, h in boxes]
        for name in (GRID_LAYER, MASK_LAYER):
            if name in self._viewer.layers:
                self._viewer.layers.remove(self._viewer.layers[name])
        mask = result["mask"]
        d = float(mask.downsample)
        self._viewer.add_labels(np.asarray(mask.mask).astype(np.uint8), name=MASK_LAYER,
                                opacity=0.35, **raster_frame(mpp, d),
                                colormap=DirectLabelColormap(
                                    color_dict={None: "transparent", 1: "cyan"}))
        side = float(boxes[0][2]) if len(boxes) else 1.0
        self._viewer.add_shapes(rects, shape_type="rectangle", name=GRID_LAYER,
                                edge_color="yellow", face_color="transparent",
                                edge_width=max(1.0, side / 64), features={"tissue": tissue},
                                **vector_frame(mpp))
        self._viewer.layers.selection.active = image
        self.say(f"{n_keep} of {n_total} grid tiles have tissue >= {config.min_tissue:g}")

    def run(self, *_: Any) -> CoreRun | None:
        """Tile the slide into the dataset folder (the Run button)."""
        if self.busy():
            return None
        try:
            image, path, mpp, config = self._inputs()
            class_map = self._class_map()
            layer = self.annotations.value
            objects = layer_to_objects(layer, image) if layer is not None else None
            out = path_value(self.output, "Dataset folder", TilingError,
                             missing="choose a folder to write the dataset to")
        except MagnipathError as e:
            show_error(str(e))
            return None
        # the file's mpp_source, or "estimated (...)" once the Magnification widget's
        # "Apply as layer scale" has set an estimate on the layer
        source = SlideSource(path=path, annotations=objects, mpp=mpp,
                             mpp_source=image.metadata["magnipath"].get("mpp_source"))

        def job(progress: Any, cancel: Any) -> dict:
            from magnipath.tiling import make_dataset

            return make_dataset([source], out, class_map=class_map, config=config,
                                progress=progress, cancel=cancel)

        def done(summary: dict) -> None:
            self.say(f"{summary['n_tiles']} tiles written to {summary['dataset']}")
            show_info(f"Tiling: {self.message}")

        return self._start(job, "Tiling", done)

    def _start(self, job: Any, description: str, on_returned: Any) -> CoreRun:
        return self.start(job, description, on_returned,
                          busy=[self.run_button, self.preview_button], idle=[self.cancel_button])
