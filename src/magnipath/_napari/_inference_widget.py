"""The Inference dock widget: the ``magnipath infer`` command, point and click.

The widget only collects values: the slide of an image layer, a model folder
(its card is shown: classes in their colours, input magnifications), the
region (whole slide, the current view, or the bounding box of the selected
shapes of a Shapes layer; see :mod:`._regions`), device, batch size and the
tissue mask. **Run** calls :func:`magnipath.infer.infer_slide` and
:func:`magnipath.infer.prediction_objects` in a thread worker and adds, on the
main thread, a lazy multiscale Labels layer coloured by class and a Shapes
layer of the predicted objects with their measurements (:mod:`._predictions`;
the Shapes layer is built, i.e. its polygons triangulated, in the worker, so
thousands of objects do not freeze the window).
**Export GeoJSON** writes an objects layer as QuPath GeoJSON; **Push to
QuPath** writes it into an image of a QuPath project (disabled, with the
reason, where QuPath is not installed). **Run on all slides** (the cohort
section, :class:`CohortSection`) runs the same model over every slide of a
folder or every image of a QuPath project on :mod:`magnipath.cohort`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Shapes
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError, ModelError
from magnipath._napari._forms import REGIONS, RegionFields, slide_field
from magnipath._napari._jobs import (
    DEVICES,
    JobWidget,
    layer_choices,
    path_value,
    slide_of,
    wrap_label,
)
from magnipath._napari._layers import legible_on_dark
from magnipath._napari._predictions import (
    add_layer_data,
    build_layer,
    default_output_root,
    objects_layer_data,
    prediction_layer_data,
    run_inference,
)
from magnipath._napari._qupath import AS_TYPES, availability, push_objects
from magnipath._napari._to_objects import layer_to_objects
from magnipath._napari._worker import CoreRun

if TYPE_CHECKING:
    import napari

__all__ = ["REGIONS", "InferenceWidget", "card_html"]


def card_html(model_dir: Path) -> str:
    """A short rich-text description of a model folder's card (classes, magnifications).

    Raises
    ------
    ModelError
        No readable ``model_card.json`` in ``model_dir``.
    """
    from magnipath.checkpoint import ModelCard

    card = ModelCard.load_json(model_dir / "model_card.json")
    g = card.input_geometry
    classes = " ".join(
        f'<span style="color: rgb{legible_on_dark(c.color)}">&#9632;</span>&nbsp;{c.name}'
        for c in card.classes.classes)
    mags = ", ".join(f"{10 / i.mpp:g}x" for i in g.inputs)
    best = (card.metrics or {}).get("best") or {}
    score = best.get("miou")
    return (f"<b>{card.arch}</b>, {g.target_size} px tiles at {mags} "
            f"({g.target_mpp:g} µm/px)<br>{classes}"
            + (f"<br>validation mIoU {score:.3f}" if isinstance(score, float) else ""))


class InferenceWidget(JobWidget):
    """Dock widget: run a trained model over a slide (or a region) and show the result.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self.image = slide_field(napari_viewer)
        self.model = FileEdit(label="Model folder", mode="d",
                              tooltip="A folder written by Training / 'magnipath train'")
        self.card = Label(value="")
        self._regions = RegionFields(napari_viewer, "Bounding box of its selected shapes "
                                                    "(all if none)")
        self.region, self.shapes = self._regions.region, self._regions.shapes
        self.device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self.batch_size = SpinBox(label="Batch size", value=8, min=1, max=4096,
                                  tooltip="Windows per forward pass")
        self.tissue_mask = CheckBox(label="Skip glass (tissue mask)", value=True)
        self.glass_background = CheckBox(
            label="Glass pixels are Background", value=False,
            tooltip=("After the model, label the pixels the tissue mask calls glass "
                     "Background (windows on the tissue edge are predicted whole)"))
        self.classes = LineEdit(label="Object classes", tooltip=(
            "Classes to turn into objects, comma separated (empty: all but Background)"))
        self.min_area = FloatSpinBox(label="Min object area (µm²)", value=0.0, min=0.0,
                                     max=1e9, step=10.0)
        self.output = FileEdit(label="Output folder", mode="d", tooltip=(
            f"Where predictions are stored (empty: {default_output_root()})"))
        self.overwrite = CheckBox(label="Replace an earlier result", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.objects = ComboBox(label="Objects layer", nullable=True,
                                choices=layer_choices(napari_viewer, Shapes))
        self.geojson = FileEdit(label="GeoJSON file", mode="w", filter="*.geojson")
        self.export_button = PushButton(text="Export GeoJSON")
        self.project = FileEdit(label="QuPath project", mode="r", filter="*.qpproj")
        self.qupath_image = LineEdit(label="QuPath image", tooltip=(
            "Image name in the project (empty: the image of the slide's file)"))
        self.as_type = ComboBox(label="Push as", choices=AS_TYPES, value=AS_TYPES[0])
        self.push_button = PushButton(text="Push to QuPath")
        self.qupath_status = Label(value="")
        self.labels_layer: Any = None
        self.objects_layer: Any = None
        self.result: dict | None = None
        super().__init__(napari_viewer, "Inference", [
            self.image, self.model, self.card, self.region, self.shapes, self.device,
            self.batch_size, self.tissue_mask, self.glass_background, self.classes,
            self.min_area, self.output,
            self.overwrite,
            Container(widgets=[self.run_button, self.cancel_button], layout="horizontal",
                      labels=False),
            self.objects, self.geojson, self.export_button, self.project, self.qupath_image,
            self.as_type, self.push_button, self.qupath_status])
        self.model.changed.connect(self._show_card)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.export_button.changed.connect(self.export_geojson)
        self.push_button.changed.connect(self.push_to_qupath)
        self.qupath_ok, self.qupath_reason = availability()
        for w in (self.project, self.qupath_image, self.as_type, self.push_button):
            w.enabled = self.qupath_ok
        self.qupath_status.value = "" if self.qupath_ok else f"QuPath: {self.qupath_reason}"
        wrap_label(self.qupath_status)
        wrap_label(self.card)
        self._regions.toggle()
        self.cohort = CohortSection(self)

    # -- reactions --------------------------------------------------------------------------------
    def _show_card(self, *_: Any) -> None:
        try:
            self.card.value = card_html(path_value(self.model, "Model folder", ModelError))
        except MagnipathError as e:
            self.card.value = str(e)[:300]

    # -- values -> core arguments (main thread) ---------------------------------------------------
    def region_box(self) -> tuple[int, int, int, int] | None:
        """Level-0 ``(x, y, w, h)`` of the chosen region (``None``: the whole slide)."""
        return self._regions.box(self.image.value)

    def _classes(self) -> list[str] | None:
        names = [s.strip() for s in self.classes.value.split(",") if s.strip()]
        return names or None

    # -- actions --------------------------------------------------------------------------------
    def run(self, *_: Any) -> CoreRun | None:
        """Predict the region with the model; add the label map and objects (the Run button)."""
        if self.busy():
            return None
        try:
            from magnipath.infer import InferConfig

            image = self.image.value
            slide, mpp = slide_of(image)
            if mpp is None:
                raise MagnipathError(f"Slide image: {slide.name} has no pixel size (mpp); "
                                     "inference needs it to read the model's magnifications")
            model = path_value(self.model, "Model folder", ModelError, must_exist=True)
            raw = str(self.output.line_edit.value).strip()
            out_root = (Path(raw).expanduser().resolve() if raw and raw != "."
                        else default_output_root())
            config = InferConfig(region=self.region_box(), device=self.device.value,
                                 batch_size=int(self.batch_size.value),
                                 tissue_mask=bool(self.tissue_mask.value),
                                 glass_background=bool(self.glass_background.value),
                                 overwrite=bool(self.overwrite.value))
            classes, min_area = self._classes(), float(self.min_area.value)
        except MagnipathError as e:
            show_error(str(e))
            return None

        def job(progress: Any, cancel: Any) -> dict:
            out = run_inference(slide, model, out_root, config, mpp=mpp, classes=classes,
                                min_area_um2=min_area, progress=progress, cancel=cancel)
            from magnipath.checkpoint import card_of, provenance_note

            out["provenance"] = provenance_note(card_of(model), slide)
            stem = Path(out["result"].store).stem  # many polygons: triangulate them here
            out["objects_layer"] = build_layer(objects_layer_data(
                out["objects"], mpp=mpp, name=f"{stem} objects", source=str(out["result"].store)))
            return out

        return self.start(job, "Inference", lambda r: self._show(r, image, mpp),
                          busy=[self.run_button], idle=[self.cancel_button])

    def _show(self, out: dict, image: Any, mpp: float | None) -> None:
        res = out["result"]
        stem = Path(res.store).stem
        self.labels_layer = add_layer_data(
            self._viewer, prediction_layer_data(res.store, name=f"{stem} prediction", mpp=mpp))
        self.objects_layer = add_layer_data(self._viewer, out["objects_layer"])
        self._viewer.layers.selection.active = image
        self.reset_choices()
        self.objects.value = self.objects_layer
        self.result = out
        self.say(f"{len(out['objects'])} objects; label map {res.out_shape[1]} x "
                 f"{res.out_shape[0]} px at {res.target_mpp:g} µm/px in {res.store}"
                 + (f"\n{out['provenance']}" if out.get("provenance") else ""))
        show_info(f"Inference: {self.message}")

    def _objects(self) -> tuple[Any, list]:
        layer = self.objects.value
        if layer is None:
            raise MagnipathError("Objects layer: run inference first (or pick a Shapes layer)")
        image = self.image.value
        return layer, layer_to_objects(layer, image if image is not None else None)

    def export_geojson(self, *_: Any) -> Path | None:
        """Write the objects layer as QuPath GeoJSON (level-0 pixels of the slide)."""
        from qupath_bridge.errors import QuPathBridgeError
        from qupath_bridge.geojson import write_geojson

        try:
            layer, objects = self._objects()
            path = path_value(self.geojson, "GeoJSON file")
            written = write_geojson(objects, path)
        except (MagnipathError, QuPathBridgeError) as e:
            show_error(str(e))
            return None
        self.say(f"{len(objects)} objects of {layer.name!r} written to {written}")
        show_info(f"Inference: {self.message}")
        return written

    def push_to_qupath(self, *_: Any) -> CoreRun | None:
        """Write the objects layer into the QuPath image of the slide (Push to QuPath)."""
        if self.busy():
            return None
        try:
            if not self.qupath_ok:
                raise MagnipathError(f"QuPath: {self.qupath_reason}")
            _, objects = self._objects()
            project = path_value(self.project, "QuPath project", must_exist=True)
            image_name = self.qupath_image.value.strip()
            slide = slide_of(self.image.value)[0] if not image_name else None
            as_type = self.as_type.value
        except MagnipathError as e:
            show_error(str(e))
            return None

        def job(progress: Any, cancel: Any) -> dict:
            from magnipath._napari._qupath import QuPathProjectError, find_image, list_images

            target: str | None = image_name or None
            if target is None:
                info = find_image(list_images(project), slide)
                if info is None:
                    raise QuPathProjectError(f"{project} has no image of {slide}; type the "
                                             "QuPath image name")
                target = info.id
            return push_objects(project, target, objects, as_type=as_type)

        def done(summary: dict) -> None:
            self.say(f"QuPath: {summary.get('added')} objects written into "
                     f"{summary.get('image')!r} ({summary.get('removed')} earlier MagniPath "
                     "objects replaced)")
            show_info(self.message)

        return self.start(job, "Push to QuPath", done, busy=[self.push_button, self.run_button])


# -- cohort: every slide of a folder or every image of a QuPath project ---------------------------
class CohortSection:
    """The Inference widget's "All slides" section: the cohort engine in a thread worker.

    The model, device, batch size, tissue mask, object classes, minimum area and
    output folder are the widget's own; the slides are every slide file under a
    folder (recursive) or every image of a QuPath project (whose objects are then
    written back, by this process, one image at a time). The list shows each
    slide's state; **Cancel** cancels the slides not yet finished (finished ones
    keep their results); a finished slide's label map and objects can be loaded
    as layers. Runs :func:`magnipath.cohort.run_cohort` (docs/cohort.md).
    """

    def __init__(self, widget: InferenceWidget) -> None:
        self.widget = widget
        self.source = FileEdit(label="Cohort (folder or project)", mode="d", tooltip=(
            "A folder of slides (searched recursively) or a QuPath project folder"))
        self.is_project = CheckBox(label="QuPath project: write the objects back", value=False,
                                   enabled=widget.qupath_ok)
        self.workers = SpinBox(label="Cohort workers", value=0, min=0, max=256, tooltip=(
            "dask worker processes (0: sized to this machine)"))
        self.run_button = PushButton(text="Run on all slides")
        self.slide_list = Label(value="")
        self.pick = ComboBox(label="Finished slide", choices=[])
        self.load_button = PushButton(text="Load its results")
        self.states: dict[str, str] = {}
        self.report: dict | None = None
        self.out_root: Path | None = None
        widget.extend([self.source, self.is_project, self.workers, self.run_button,
                       self.slide_list, self.pick, self.load_button])
        wrap_label(self.slide_list)
        self.run_button.changed.connect(self.run)
        self.load_button.changed.connect(self.load)

    def _show_states(self) -> None:
        self.slide_list.value = "<br>".join(f"{k}: {v}" for k, v in self.states.items())

    def _on_progress(self, ev: Any) -> None:
        name = ev.info.get("slide")
        if not name:
            return
        if ev.stage == "cohort" and ev.info.get("status"):
            self.states[name] = str(ev.info["status"])
        elif ev.stage == "cohort/slide":
            total = f"/{ev.total}" if ev.total else ""
            self.states[name] = f"{ev.info.get('step')} {ev.done}{total}"
        self._show_states()

    def run(self, *_: Any) -> CoreRun | None:
        """Run the widget's model over every slide of the cohort (Run on all slides)."""
        w = self.widget
        if w.busy():
            return None
        try:
            from magnipath.cohort import collect, infer_job
            from magnipath.infer import InferConfig

            source = path_value(self.source, "Cohort (folder or project)", must_exist=True)
            model = path_value(w.model, "Model folder", ModelError, must_exist=True)
            raw = str(w.output.line_edit.value).strip()
            out = (Path(raw).expanduser().resolve() if raw and raw != "."
                   else default_output_root())
            project = source if self.is_project.value else None
            slides = collect(source, qupath=project is not None)
            config = InferConfig(device=w.device.value, batch_size=int(w.batch_size.value),
                                 tissue_mask=bool(w.tissue_mask.value),
                                 glass_background=bool(w.glass_background.value),
                                 overwrite=bool(w.overwrite.value))
            job = infer_job(model, out, config, classes=w._classes(),
                            min_area_um2=float(w.min_area.value), qupath_project=project)
            workers = int(self.workers.value) or None
        except MagnipathError as e:
            show_error(str(e))
            return None
        self.states = {s.name: "waiting" for s in slides}
        self.out_root = out
        self._show_states()

        def work(progress: Any, cancel: Any) -> dict:
            from magnipath.cohort import CohortFailed, run_cohort

            try:
                return run_cohort(slides, job, out, workers=workers, progress=progress,
                                  cancel=cancel)
            except CohortFailed as e:  # the others finished: show them, say what failed
                rep = json.loads((out / "cohort.json").read_text())
                return {**rep, "error": str(e)}

        return w.start(work, "Cohort inference", self._done, busy=[self.run_button,
                                                                  w.run_button],
                       idle=[w.cancel_button], on_progress=self._on_progress)

    def _done(self, rep: dict) -> None:
        self.report = rep
        for r in rep["slides"]:
            self.states[r["name"]] = r["status"] + (f": {r['error']}" if r.get("error") else "")
        self._show_states()
        names = [r["name"] for r in rep["slides"] if r["status"] in ("done", "skipped")]
        self.pick.choices = names
        if names:
            self.pick.value = names[0]
        msg = (f"cohort: {rep['done']} done, {rep['skipped']} already done, {rep['failed']} "
               f"failed; report in {Path(rep['out']) / 'cohort.csv'}")
        self.widget.say(msg)
        if rep.get("error"):
            show_error(rep["error"])
        else:
            show_info(f"Inference: {msg}")

    def load(self, *_: Any) -> list:
        """Add the chosen slide's label map and objects as layers (Load its results)."""
        from magnipath.infer import open_prediction
        from qupath_bridge.geojson import read_geojson

        if self.report is None or not self.pick.value:
            show_error("Finished slide: run the cohort first, then choose a slide")
            return []
        row = {r["name"]: r for r in self.report["slides"]}[self.pick.value]
        _, meta = open_prediction(row["store"])
        mpp = float(meta["signature"]["slide_mpp"])
        stem = Path(row["store"]).stem
        viewer = self.widget._viewer
        labels = add_layer_data(viewer, prediction_layer_data(row["store"],
                                                              name=f"{stem} prediction", mpp=mpp))
        objects = add_layer_data(viewer, build_layer(objects_layer_data(
            read_geojson(row["geojson"]), mpp=mpp, name=f"{stem} objects",
            source=row["store"])))
        self.widget.reset_choices()
        return [labels, objects]
