"""The Magnification dock widget: estimate the magnification of an image from its pixels.

For figures, screenshots and exported images without metadata (Otálora et
al.; :mod:`magnipath.magnification`). The widget reads the pixels of an image
layer (the whole image, or the part the canvas shows; at most
:data:`MAX_SIDE` px a side, the centre of a larger region) at full resolution
and runs :func:`magnipath.magnification.estimate` in a thread worker: with a
trained model folder, the direct and area regressions and their fusion; and
always the non-learning baseline (Otsu nuclei, mean nucleus area). For the
whole of a slide opened by MagniPath it runs
:func:`magnipath.magnification.suggest_mpp` instead (tissue tiles from the
whole slide). The answer is shown as an estimate, next to what the file's
metadata says, and the tiles that voted are added as a Shapes layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from magnipath._errors import MagnipathError
from magnipath._napari._jobs import DEVICES, JobWidget, layer_choices, wrap_label
from magnipath._napari._predictions import add_layer_data
from magnipath._napari._regions import slide_size, view_box
from magnipath._napari._worker import CoreRun

if TYPE_CHECKING:
    import napari

REGIONS = ("whole image", "current view")
MODES = ("auto", "center", "tiles")
MAX_SIDE = 4096
"""Largest side (px) of the region read into memory; larger regions use their centre."""
TILES_LAYER = "magnification tiles"


def _fmt(v: Any, unit: str = "x") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(f) else f"{f:.3g}{unit}"


def describe(result: dict, known_mpp: float | None = None) -> str:
    """Rich text of an :func:`~magnipath.magnification.estimate` result for the widget."""
    mag, mpp = result.get("magnification"), result.get("mpp_estimate")
    lines = [f"<b>≈ {_fmt(mag)}</b> ({_fmt(mpp, ' µm/px')}) <i>an estimate from the "
             f"pixels, method: {result.get('method')}</i>"]
    if "fusion" in result:
        d, a, f = result["direct"], result["area"], result["fusion"]
        lines += [f"direct regression: {_fmt(d['magnification'])} (class {_fmt(d['class'])})",
                  f"area regression: {_fmt(a['area_px'], ' px²')} nucleus area → "
                  f"{_fmt(a['class'])}",
                  f"fusion: {_fmt(f['magnification'])} → {_fmt(f['class'])}"]
    base = result.get("baseline")
    if base:
        lines.append(f"baseline: mean nucleus area {_fmt(base.get('area_px'), ' px²')} "
                     f"({base.get('n_nuclei', 0)} nuclei) → {_fmt(base.get('class'))}")
    votes = result.get("votes") or {}
    if votes:
        lines.append("votes: " + ", ".join(f"{k}x: {v}" for k, v in
                                           sorted(votes.items(), key=lambda kv: -kv[1])))
    if result.get("n_tiles") is not None:
        lines.append(f"{result['n_tiles']} tiles of 224 px ({result.get('mode')})")
    if known_mpp:
        lines.append(f"the file says: {10 / known_mpp:.3g}x ({known_mpp:.4g} µm/px)")
    return "<br>".join(lines)


def read_pixels(layer: Any, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Full-resolution pixels ``(y, x, c)`` of an image layer inside ``box`` (level-0 px).

    At most :data:`MAX_SIDE` px a side: a larger box is cut to its centre.

    Returns
    -------
    (numpy.ndarray, (int, int))
        The pixels and the level-0 ``(x, y)`` of their top-left corner.
    """
    x, y, w, h = box
    if w > MAX_SIDE:
        x, w = x + (w - MAX_SIDE) // 2, MAX_SIDE
    if h > MAX_SIDE:
        y, h = y + (h - MAX_SIDE) // 2, MAX_SIDE
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data[y:y + h, x:x + w]), (x, y)


class MagnificationWidget(JobWidget):
    """Dock widget: estimate an image's magnification (``magnipath magnification estimate``).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the menu).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        self._viewer = napari_viewer
        self.image = ComboBox(label="Image", choices=layer_choices(napari_viewer, Image))
        self.region = ComboBox(label="Region", choices=REGIONS, value=REGIONS[0])
        self.model = FileEdit(label="Model folder", mode="d", tooltip=(
            "A folder from 'magnipath magnification train' (empty: the baseline only)"))
        self.mode = ComboBox(label="Patches", choices=MODES, value="auto", tooltip=(
            "center: the centre 224 px; tiles: up to 'Max tiles' tissue tiles that vote"))
        self.max_tiles = SpinBox(label="Max tiles", value=16, min=1, max=256)
        self.device = ComboBox(label="Device", choices=DEVICES, value="cpu")
        self.run_button = PushButton(text="Estimate")
        self.result_label = Label(value="")
        self.result: dict | None = None
        super().__init__(napari_viewer, "Magnification", [
            self.image, self.region, self.model, self.mode, self.max_tiles, self.device,
            self.run_button, self.result_label])
        wrap_label(self.result_label)
        self.run_button.changed.connect(self.run)

    def _model(self) -> Any:
        raw = str(self.model.line_edit.value).strip()
        return None if not raw or raw == "." else raw

    def run(self, *_: Any) -> CoreRun | None:
        """Estimate the magnification of the chosen region (the Estimate button)."""
        if self.busy():
            return None
        layer = self.image.value
        try:
            if layer is None:
                raise MagnipathError("Image: open an image (a figure, a screenshot, a slide) "
                                     "and pick its layer")
            meta = (layer.metadata or {}).get("magnipath") or {}
            whole = self.region.value == REGIONS[0]
            if whole:
                w, h = slide_size(layer)
                box = (0, 0, w, h)
            else:
                box = view_box(self._viewer, layer)
            model, mode, n = self._model(), self.mode.value, int(self.max_tiles.value)
            device = self.device.value
        except MagnipathError as e:
            show_error(str(e))
            return None
        slide_path = meta.get("path") if layer.multiscale and whole else None

        def job(progress: Any, cancel: Any) -> dict:
            from magnipath.magnification import estimate, suggest_mpp

            if slide_path:
                _, res = suggest_mpp(slide_path, model, n_tiles=n, device=device,
                                     progress=progress, cancel=cancel)
                return {"result": res, "origin": (0, 0)}  # tile boxes in level-0 px
            pixels, origin = read_pixels(layer, box)
            res = estimate(pixels, model, mode=mode, max_tiles=n, device=device,
                           progress=progress, cancel=cancel)
            return {"result": res, "origin": origin}

        return self.start(job, "Magnification", lambda r: self._show(r, layer, meta.get("mpp")),
                          busy=[self.run_button])

    def _show(self, out: dict, layer: Any, known_mpp: float | None) -> None:
        res = out["result"]
        self.result = res
        self.result_label.value = describe(res, known_mpp)
        self.say(f"Estimated magnification: {_fmt(res.get('magnification'))} (an estimate)")
        show_info(f"Magnification: {self.message}")
        origin = out["origin"]
        boxes = res.get("tile_boxes") or []
        if origin is None or not boxes:
            return
        x0, y0 = origin
        rects = [np.array([[y0 + y, x0 + x], [y0 + y, x0 + x + w], [y0 + y + h, x0 + x + w],
                           [y0 + y + h, x0 + x]], dtype=float) for x, y, w, h in boxes]
        scale = np.asarray(layer.scale, dtype=float)[-2:]  # pixel edges -> napari centres
        frame = {"scale": tuple(scale), "units": tuple(layer.units)[-2:],
                 "translate": tuple(np.asarray(layer.translate, dtype=float)[-2:] - scale / 2)}
        add_layer_data(self._viewer, (rects, {
            "name": TILES_LAYER, "shape_type": "rectangle", "edge_color": "cyan",
            "face_color": "transparent", "edge_width": 2.0, **frame}, "shapes"))
        self._viewer.layers.selection.active = layer
