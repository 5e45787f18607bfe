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

For a layer whose pixel size is unknown (a slide whose file gives no mpp,
opened in pixels; a figure), *Apply as layer scale* (:func:`apply_estimate`)
sets the layer's scale to the estimated µm/px and records it as an estimate:
``metadata["magnipath"]["mpp"]`` (which the Tiling and Inference widgets read),
``mpp_source = "estimated (baseline)"`` (or ``"estimated (fusion, model
NAME)"``), ``mpp_estimate`` (the details) and a ``[≈30x estimated]`` suffix on
the layer name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning

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
ESTIMATED_SUFFIX = re.compile(r" \[≈[^\]]* estimated\]$")
"""The suffix :func:`apply_estimate` adds to a layer name (replaced when applied again)."""


def _fmt(v: Any, unit: str = "x") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(f) else f"{f:.3g}{unit}"


def describe(result: dict, known_mpp: float | None = None,
             known_source: str | None = None) -> str:
    """Rich text of an :func:`~magnipath.magnification.estimate` result for the widget.

    ``known_mpp`` / ``known_source`` are the layer's ``metadata["magnipath"]``
    ``mpp`` and ``mpp_source`` (what the file says, or an estimate applied before).
    """
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
    if known_mpp and _is_estimated(known_source):
        lines.append(f"applied to the layer before: {10 / known_mpp:.3g}x "
                     f"({known_mpp:.4g} µm/px, {known_source})")
    elif known_mpp:
        lines.append(f"the file says: {10 / known_mpp:.3g}x ({known_mpp:.4g} µm/px)")
    else:
        lines.append("no known pixel size: check the estimate, then 'Apply as layer scale'")
    return "<br>".join(lines)


def _is_estimated(source: Any) -> bool:
    from magnipath.magnification._suggest import ESTIMATED

    return str(source or "").startswith(ESTIMATED)


def apply_estimate(layer: Any, result: dict, source: str) -> float:
    """Set an image layer's scale to an estimated µm/px and record that it is an estimate.

    The layer's data stay level-0 pixels; its ``scale`` becomes ``(mpp, mpp)``
    and its units µm (its ``translate`` is rescaled with it; 0 for slides).
    ``metadata["magnipath"]`` gets ``mpp`` (read by the Tiling and Inference
    widgets), ``mpp_source`` (``source``, e.g. ``"estimated (baseline)"``) and
    ``mpp_estimate`` (magnification, method, votes, tiles); the layer name gets
    a ``[≈30x estimated]`` suffix.

    Parameters
    ----------
    layer : napari.layers.Image
    result : dict
        An :func:`~magnipath.magnification.estimate` or
        :func:`~magnipath.magnification.suggest_mpp` result (``mpp_estimate`` in
        µm per level-0 pixel).
    source : str
        The ``mpp_source`` label (:func:`magnipath.magnification._suggest.estimate_source`).

    Returns
    -------
    float
        The mpp applied.

    Raises
    ------
    MagnipathError
        When nothing was estimated, or the layer's file gives its own mpp.
    """
    mpp = result.get("mpp_estimate")
    if not mpp or not np.isfinite(mpp):
        raise MagnipathError("Apply: nothing was estimated (no nuclei found); estimate on "
                             "another region or give the mpp yourself")
    meta = layer.metadata.setdefault("magnipath", {})
    if meta.get("mpp") and not _is_estimated(meta.get("mpp_source")):
        raise MagnipathError(f"Apply: {layer.name} has a pixel size from its file "
                             f"({meta['mpp']:.4g} µm/px, {meta.get('mpp_source')}); an estimate "
                             "does not replace it (re-open it with mpp=... if the file is wrong)")
    old = np.asarray(layer.scale, dtype=float)[-2:]
    translate = np.asarray(layer.translate, dtype=float)
    translate[-2:] = translate[-2:] / old * mpp
    layer.scale = (*tuple(layer.scale)[:-2], mpp, mpp)
    layer.translate = tuple(translate)
    layer.units = (*tuple(layer.units)[:-2], "um", "um")
    mag = result.get("magnification")
    meta.update(mpp=float(mpp), mpp_source=source, mpp_estimate={
        "magnification": mag, "mpp": float(mpp), "method": result.get("method"),
        "votes": result.get("votes"), "n_tiles": result.get("n_tiles"),
        "note": "an estimate from the pixels, not read from the file"})
    layer.name = f"{ESTIMATED_SUFFIX.sub('', layer.name)} [≈{_fmt(mag)} estimated]"
    return float(mpp)


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
        self.apply_button = PushButton(text="Apply as layer scale", enabled=False, tooltip=(
            "Set the layer's scale (µm/px) to this ESTIMATE, for a layer without a known "
            "pixel size; Tiling and Inference then use it. Check it first."))
        self.applied_label = Label(value="")
        self.result: dict | None = None
        self._target: tuple[Any, str] | None = None  # (layer, mpp_source) of the result
        super().__init__(napari_viewer, "Magnification", [
            self.image, self.region, self.model, self.mode, self.max_tiles, self.device,
            self.run_button, self.result_label, self.apply_button, self.applied_label])
        wrap_label(self.result_label)
        wrap_label(self.applied_label)
        self.run_button.changed.connect(self.run)
        self.apply_button.changed.connect(self.apply)

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
        self.apply_button.enabled = False
        self._target = None

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

        return self.start(job, "Magnification", lambda r: self._show(r, layer, model),
                          busy=[self.run_button])

    def apply(self, *_: Any) -> float | None:
        """Set the estimated layer's scale to the estimate (the Apply as layer scale button)."""
        if self._target is None or self.result is None:
            show_error("Apply: estimate the magnification of a layer first")
            return None
        layer, source = self._target
        try:
            if layer not in self._viewer.layers:
                raise MagnipathError(f"Apply: the layer {layer.name!r} was closed")
            mpp = apply_estimate(layer, self.result, source)
        except MagnipathError as e:
            show_error(str(e))
            return None
        if TILES_LAYER in self._viewer.layers:  # keep the voting tiles on their pixels
            tiles = self._viewer.layers[TILES_LAYER]
            tiles.scale, tiles.units = (mpp, mpp), ("um", "um")
            tiles.translate = tuple(np.asarray(layer.translate, float)[-2:] - mpp / 2)
        text = (f"{layer.name}: scale set to {mpp:.4g} µm/px ({10 / mpp:.3g}x), an ESTIMATE "
                f"({source}); Tiling and Inference now use it. Other layers opened in pixels "
                "keep their scale.")
        self._viewer.reset_view()  # the world moved from pixels to µm
        self.applied_label.value = text
        self.apply_button.enabled = False
        self.say(f"Applied the estimated scale {mpp:.4g} µm/px to {layer.name}")
        show_warning(text)
        return mpp

    def _show(self, out: dict, layer: Any, model: str | None) -> None:
        from magnipath.magnification._suggest import estimate_source

        res = out["result"]
        self.result = res
        meta = (layer.metadata or {}).get("magnipath") or {}
        known, known_source = meta.get("mpp"), meta.get("mpp_source")
        self.result_label.value = describe(res, known, known_source)
        source = res.get("mpp_source") or estimate_source(res.get("method"), model)
        self._target = (layer, source)
        self.applied_label.value = ""
        self.apply_button.enabled = bool(res.get("mpp_estimate")) and (
            not known or _is_estimated(known_source))
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
