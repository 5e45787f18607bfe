"""The Mitosis dock widget: train the tile classifier from points, detect, export (Pearce).

The widget only collects values (see :mod:`magnipath.mitosis` for the method):

* **Train** cuts tiles of the slide (or of a region: the current view or the
  selected shapes of a Shapes layer), labels them from the mitoses marked in a
  Points layer (probability map ``exp(-a d)`` above a threshold) and trains
  the small CNN with balanced sampling and the negative feed into a model
  folder (:func:`._mitosis.train_model`);
* **Detect** runs a model folder over the slide or region
  (:func:`magnipath.mitosis.detect`) and adds the per-tile heat map (an Image
  layer over the slide) and the tiles above the detection threshold (a Points
  layer with the ``Mitosis probability`` feature);
* **Export GeoJSON** writes a Points layer as QuPath detections.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Points
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError
from magnipath._napari._forms import REGIONS, RegionFields, slide_field
from magnipath._napari._jobs import (
    DEVICES,
    JobWidget,
    layer_choices,
    parse_float,
    path_value,
    slide_of,
)
from magnipath._napari._mitosis import (
    detections_layer_data,
    heatmap_layer_data,
    points_xy,
    train_model,
)
from magnipath._napari._predictions import add_layer_data
from magnipath._napari._to_objects import layer_to_objects
from magnipath._napari._worker import CoreRun

if TYPE_CHECKING:
    import napari

__all__ = ["REGIONS", "MitosisWidget"]


def _device(name: str) -> str:
    from magnipath.device import resolve_device

    return str(resolve_device(name))


class MitosisWidget(JobWidget):
    """Dock widget: mitosis detection in tiles (``magnipath mitosis train / detect``).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from magnipath.mitosis import LOSSES, STAINS

        self.image = slide_field(napari_viewer)
        self.points = ComboBox(label="Mitoses (points)", nullable=True,
                               choices=layer_choices(napari_viewer, Points),
                               tooltip="The mitoses marked on the slide (training labels)")
        self._regions = RegionFields(napari_viewer)
        self.region, self.shapes = self._regions.region, self._regions.shapes
        self.tile = SpinBox(label="Tile (px)", value=64, min=16, max=1024, step=16,
                            tooltip="Tile side in pixels (Pearce: 64 or 256)")
        self.magnification = FloatSpinBox(label="Tile magnification (x)", value=0.0, min=0.0,
                                          max=100.0, step=5.0,
                                          tooltip="0: the slide's own (level 0)")
        self.decay = FloatSpinBox(label="Decay a (1/px)", value=0.1, min=0.001, max=10.0,
                                  step=0.05, tooltip="Label map exp(-a d), d in tile pixels")
        self.label_threshold = FloatSpinBox(label="Label threshold", value=0.5, min=0.0,
                                            max=1.0, step=0.05,
                                            tooltip="A tile is positive when its map exceeds this")
        self.stain = ComboBox(label="Input", choices=list(STAINS), value="rgb",
                              tooltip="rgb; rgb+he: RGB + Macenko H and E; normalise")
        self.loss = ComboBox(label="Loss", choices=list(LOSSES), value="bce")
        self.epochs = SpinBox(label="Epochs", value=10, min=1, max=10_000)
        self.lr = LineEdit(label="Learning rate", value="1e-4")
        self.batch_size = SpinBox(label="Batch size", value=32, min=2, max=4096)
        self.filters = LineEdit(label="Conv channels", value="128, 64",
                                tooltip="Channels of each conv block (Pearce: 128, 64)")
        self.negative_feed = CheckBox(label="Negative feed", value=True)
        self.device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self.model = FileEdit(label="Model folder", mode="d")
        self.overwrite = CheckBox(label="Replace an existing model", value=False)
        self.train_button = PushButton(text="Train")
        self.detect_button = PushButton(text="Detect")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.threshold = FloatSpinBox(label="Detection threshold", value=0.5, min=0.0, max=1.0,
                                      step=0.05)
        self.detections = ComboBox(label="Detections layer", nullable=True,
                                   choices=layer_choices(napari_viewer, Points))
        self.geojson = FileEdit(label="GeoJSON file", mode="w", filter="*.geojson")
        self.export_button = PushButton(text="Export GeoJSON")
        self.trained: dict | None = None
        self.detection: Any = None
        self.heatmap_layer: Any = None
        self.points_layer: Any = None
        super().__init__(napari_viewer, "Mitosis", [
            self.image, self.points, self.region, self.shapes, self.tile, self.magnification,
            self.decay, self.label_threshold, self.stain, self.loss, self.epochs, self.lr,
            self.batch_size, self.filters, self.negative_feed, self.device, self.model,
            self.overwrite,
            Container(widgets=[self.train_button, self.detect_button, self.cancel_button],
                      layout="horizontal", labels=False),
            self.threshold, self.detections, self.geojson, self.export_button])
        self.train_button.changed.connect(self.train)
        self.detect_button.changed.connect(self.detect)
        self.cancel_button.changed.connect(self.cancel)
        self.export_button.changed.connect(self.export_geojson)
        self._regions.toggle()

    def _configs(self) -> tuple[Any, Any]:
        from magnipath.mitosis import MitosisError, MitosisTrainConfig, TileConfig

        try:
            filters = tuple(int(f) for f in self.filters.value.replace(";", ",").split(",")
                            if f.strip())
        except ValueError:
            raise MitosisError(f"Conv channels: {self.filters.value!r} is not a list of whole "
                               "numbers, e.g. '128, 64'") from None
        if not filters:
            raise MitosisError("Conv channels: give e.g. '128, 64'")
        mag = float(self.magnification.value)
        tile = TileConfig(tile=int(self.tile.value), mpp=10.0 / mag if mag > 0 else None,
                          a=float(self.decay.value), threshold=float(self.label_threshold.value))
        train = MitosisTrainConfig(
            stain=self.stain.value, filters=filters, loss=self.loss.value,
            lr=parse_float(self.lr.value, "Learning rate", MitosisError),
            epochs=int(self.epochs.value), batch_size=int(self.batch_size.value),
            negative_feed=bool(self.negative_feed.value), device=self.device.value)
        return tile, train

    # -- actions ------------------------------------------------------------------------------
    def train(self, *_: Any) -> CoreRun | None:
        """Cut labelled tiles and train a model into the model folder (the Train button)."""
        if self.busy():
            return None
        try:
            image = self.image.value
            slide, mpp = slide_of(image)
            if self.points.value is None:
                raise MagnipathError("Mitoses (points): mark the mitoses in a Points layer "
                                     "over the slide and pick it")
            points = points_xy(self.points.value, image)
            region = self._regions.box(image)
            tile_config, train_config = self._configs()
            out = path_value(self.model, "Model folder")
            overwrite = bool(self.overwrite.value)
        except MagnipathError as e:
            show_error(str(e))
            return None

        def job(progress: Any, cancel: Any) -> dict:
            return train_model(slide, points, out, tile_config=tile_config,
                               train_config=train_config, region=region, mpp=mpp,
                               overwrite=overwrite, progress=progress, cancel=cancel)

        def done(res: dict) -> None:
            self.trained = res
            self.say(f"Model folder: {res['model']} ({res['tiles']} tiles, "
                     f"{res['positive_tiles']} positive)")
            show_info(f"Mitosis: {self.message}")

        return self.start(job, "Mitosis training", done,
                          busy=[self.train_button, self.detect_button],
                          idle=[self.cancel_button])

    def detect(self, *_: Any) -> CoreRun | None:
        """Run the model folder over the slide or region (the Detect button)."""
        if self.busy():
            return None
        try:
            image = self.image.value
            slide, mpp = slide_of(image)
            model = path_value(self.model, "Model folder", must_exist=True)
            region = self._regions.box(image)
            threshold, device = float(self.threshold.value), self.device.value
        except MagnipathError as e:
            show_error(str(e))
            return None

        def job(progress: Any, cancel: Any) -> Any:
            from magnipath.mitosis import detect

            return detect(model, slide, region=region, device=_device(device),
                          progress=progress, cancel=cancel)

        def done(det: Any) -> None:
            self.detection = det
            stem = Path(slide).stem
            self.heatmap_layer = add_layer_data(
                self._viewer, heatmap_layer_data(det, mpp, f"{stem} mitosis heat map"))
            self.points_layer = add_layer_data(
                self._viewer, detections_layer_data(det, threshold, mpp, f"{stem} mitoses"))
            self._viewer.layers.selection.active = image
            self.reset_choices()
            self.detections.value = self.points_layer
            n = int((det.probs > threshold).sum())
            self.say(f"{n} of {len(det.probs)} tissue tiles above {threshold:g}")
            show_info(f"Mitosis: {self.message}")

        return self.start(job, "Mitosis detection", done,
                          busy=[self.train_button, self.detect_button],
                          idle=[self.cancel_button])

    def export_geojson(self, *_: Any) -> Path | None:
        """Write the detections layer as QuPath GeoJSON (level-0 px of the slide)."""
        from qupath_bridge.errors import QuPathBridgeError
        from qupath_bridge.geojson import write_geojson

        try:
            layer = self.detections.value
            if layer is None:
                raise MagnipathError("Detections layer: run Detect first (or pick a Points "
                                     "layer)")
            objects = layer_to_objects(layer, self.image.value)
            written = write_geojson(objects, path_value(self.geojson, "GeoJSON file"))
        except (MagnipathError, QuPathBridgeError) as e:
            show_error(str(e))
            return None
        self.say(f"{len(objects)} detections written to {written}")
        return written
