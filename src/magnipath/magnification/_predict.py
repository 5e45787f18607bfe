"""Using magnification models: per-patch predictions, any-size images, slides without mpp.

Every result here is an *estimate* from image content (nucleus sizes and
texture scale), not a measurement; the returned dicts say so
(``is_estimate: True``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magnipath.magnification._baseline import DEFAULT_TABLE, baseline_areas
from magnipath.magnification._core import (
    PATCH,
    AreaTable,
    MagnificationError,
    closest_magnification,
    fuse,
)
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report

NOTE = ("estimated from image content (nucleus sizes, texture scale), not read from metadata; "
        "check it before relying on it")


@dataclass
class MagnificationModel:
    """A trained model folder loaded for prediction (see :func:`magnipath.magnification.train`).

    Attributes
    ----------
    path : Path
    card : dict
    direct, area : torch.nn.Module
        The two regressors, in eval mode on ``device``.
    area_table, baseline_table : AreaTable
    device : torch.device
    amp : torch.dtype or None
        Autocast dtype for prediction (None: float32).
    """

    path: Path
    card: dict
    direct: object
    area: object
    area_table: AreaTable
    baseline_table: AreaTable
    device: object
    amp: object = None

    @property
    def alpha(self) -> float:
        """Fusion weight of the area branch stored in the card."""
        return float(self.card.get("alpha", 0.2))


def load_model(path: str | os.PathLike, device: str = "cpu", *,
               amp: bool = False) -> MagnificationModel:
    """Load a model folder written by :func:`magnipath.magnification.train`.

    ``amp`` predicts under mixed precision (:func:`magnipath.device.amp_dtype`:
    bfloat16 on CPUs with native bfloat16 and on recent GPUs), with channels-last
    tensors; off by default (float32).
    """
    import torch

    from magnipath.device import amp_dtype, resolve_device
    from magnipath.magnification._nets import build_net
    from magnipath.magnification._train import CARD_FORMAT

    path = Path(path)
    card_path = path / "card.json"
    if not card_path.is_file():
        raise MagnificationError(f"{path} is not a magnification model folder (no card.json); "
                                 "train one with 'magnipath magnification train'.")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as e:
        raise MagnificationError(f"{card_path} cannot be read ({e}).") from e
    if card.get("format") != CARD_FORMAT:
        raise MagnificationError(f"{card_path} is not a magnification model card.")
    dev = resolve_device(device)
    dtype = amp_dtype(dev, amp)
    nets = {}
    for target in ("direct", "area"):
        net = build_net(card["arch"], **card.get("arch_kwargs", {}))
        try:
            state = torch.load(path / f"{target}.pt", map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (OSError, RuntimeError, KeyError) as e:
            raise MagnificationError(f"{path / f'{target}.pt'} cannot be loaded ({e}); the "
                                     "model folder is damaged.") from e
        net = net.to(dev).eval()
        if dtype is not None:
            net = net.to(memory_format=torch.channels_last)
        nets[target] = net
    return MagnificationModel(path, card, nets["direct"], nets["area"],
                              AreaTable.from_dict(card["area_table"]),
                              AreaTable.from_dict(card["baseline_table"]), dev, dtype)


def predict_patches(patches: np.ndarray, model: MagnificationModel | None = None, *,
                    alpha: float | None = None, baseline: bool = True,
                    baseline_table: AreaTable | None = None, batch_size: int = 16,
                    tta: bool = True, progress: ProgressCallback | None = None,
                    cancel: CancelCallback | None = None) -> dict[str, np.ndarray]:
    """Every estimate for a batch of ``(N, 224, 224, 3)`` uint8 patches.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``(N,)`` arrays. With a model: ``direct`` (regressed magnification),
        ``direct_class``, ``area_px`` (regressed mean nucleus area, px),
        ``area_class`` (class of the closest training mean area), ``fusion``
        (``alpha * area_class + (1 - alpha) * direct``) and ``fusion_class``.
        With ``baseline``: ``baseline_area_px`` (NaN: no nucleus found),
        ``baseline_n`` and ``baseline_class``.

    Notes
    -----
    ``tta`` (default) averages each regressor's output over the 8 rotations and
    mirror images of a patch (:func:`magnipath.magnification._nets.regress_tta`):
    8 times the cost, and on the benchmark's held-out slides kappa of the direct
    regressor +0.02 (docs/magnification.md). ``tta=False`` predicts from the patch
    as it is.
    """
    p = np.asarray(patches)
    if p.ndim != 4 or p.shape[-1] != 3:
        raise MagnificationError(f"patches must be (N, y, x, 3) RGB, got shape {p.shape}.")
    out: dict[str, np.ndarray] = {}
    if model is not None:
        import torch

        from magnipath.magnification._inputs import decode_target, to_input
        from magnipath.magnification._nets import regress, regress_tta

        size = int(model.card.get("patch", PATCH))
        if p.shape[1:3] != (size, size):
            raise MagnificationError(f"the model takes {size} x {size} patches, got "
                                     f"{p.shape[1]} x {p.shape[2]}.")
        raw = {"direct": [], "area": []}
        mode, amp = model.card.get("input", "rgb"), model.amp
        run = regress_tta if tta else regress
        with torch.no_grad():
            for s in range(0, len(p), batch_size):
                check_cancel(cancel)
                x = to_input(p[s:s + batch_size], model.device, mode, amp is not None)
                raw["direct"].append(run(model.direct, x, amp).cpu().numpy())
                raw["area"].append(run(model.area, x, amp).cpu().numpy())
                report(progress, "magnification/predict", min(s + batch_size, len(p)), len(p))
        sc = model.card["scales"]
        tt = model.card.get("target_transform", "linear")
        direct = decode_target(np.concatenate(raw["direct"]), sc["direct"], tt)
        area = decode_target(np.concatenate(raw["area"]), sc["area"], tt)
        area_cls = model.area_table.to_magnification(area)
        fused = fuse(area_cls, direct, model.alpha if alpha is None else alpha)
        out.update(direct=direct, direct_class=closest_magnification(direct),
                   area_px=area, area_class=area_cls, fusion=fused,
                   fusion_class=closest_magnification(fused))
    if baseline:
        table = baseline_table or (model.baseline_table if model is not None else DEFAULT_TABLE)
        areas, counts = baseline_areas(p, cancel=cancel)
        out.update(baseline_area_px=areas, baseline_n=counts,
                   baseline_class=table.to_magnification(areas))
    return out


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file (PNG, JPEG, TIFF, ...) as ``(y, x, 3)`` uint8 RGB (alpha dropped)."""
    path = Path(path)
    if not path.is_file():
        raise MagnificationError(f"{path}: no such image file.")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path, key=0)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
    except Exception as e:
        raise MagnificationError(f"{path}: cannot read the image ({type(e).__name__}: "
                                 f"{str(e)[:200]}).") from e
    return as_rgb(arr, str(path))


def as_rgb(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """``(y, x)``, ``(y, x, 1|3|4)`` uint8/uint16/float -> ``(y, x, 3)`` uint8."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise MagnificationError(f"{what}: expected a 2-D colour image (y, x, 3), got shape "
                                 f"{a.shape}.")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a[..., :3]
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype.kind == "f":
        a = np.clip(np.rint(a * (255.0 if a.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def tissue_fraction(img: np.ndarray, glass: int = 215) -> float:
    """Fraction of pixels darker than glass in at least one channel."""
    return float(np.mean(np.any(img <= glass, axis=-1)))


def image_patches(img: np.ndarray, *, mode: str = "auto", max_tiles: int = 16,
                  min_tissue: float = 0.3,
                  patch: int = PATCH) -> tuple[np.ndarray, list[tuple[int, int, int, int]], str]:
    """Patches of an any-size image: the centre crop, or a grid of tissue tiles.

    Images smaller than ``patch`` are padded with white (glass) around the centre.

    Returns
    -------
    (numpy.ndarray, list of box, str)
        ``(K, patch, patch, 3)`` uint8, their boxes ``(x, y, w, h)`` in image
        pixels, and the mode used (``"center"`` or ``"tiles"``).
    """
    if mode not in ("auto", "center", "tiles"):
        raise MagnificationError(f"mode {mode!r}: choose auto, center or tiles.")
    h, w = img.shape[:2]
    if min(h, w) < 32:
        raise MagnificationError(f"the image is {w} x {h} px; at least 32 px a side is needed.")
    if h < patch or w < patch:
        ph, pw = max(0, patch - h), max(0, patch - w)
        img = np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
                     constant_values=255)
        h, w = img.shape[:2]
    ny, nx = h // patch, w // patch
    if mode == "center" or (mode == "auto" and ny * nx < 2):
        y0, x0 = (h - patch) // 2, (w - patch) // 2
        return img[None, y0:y0 + patch, x0:x0 + patch].copy(), [(x0, y0, patch, patch)], "center"
    oy, ox = (h - ny * patch) // 2, (w - nx * patch) // 2
    boxes = [(ox + c * patch, oy + r * patch, patch, patch) for r in range(ny) for c in range(nx)]
    tiles = np.stack([img[y:y + patch, x:x + patch] for x, y, _, _ in boxes])
    frac = np.array([tissue_fraction(t) for t in tiles])
    order = np.argsort(-frac, kind="stable")
    keep = [i for i in order if frac[i] >= min_tissue][:max_tiles] or [int(order[0])]
    keep = sorted(keep)
    return tiles[keep], [boxes[i] for i in keep], "tiles"


def _vote(classes: np.ndarray, values: np.ndarray | None = None) -> tuple[float, dict]:
    c = classes[np.isfinite(classes)]
    if c.size == 0:
        return float("nan"), {}
    u, n = np.unique(c, return_counts=True)
    votes = {f"{k:g}": int(v) for k, v in zip(u, n, strict=True)}
    top = u[n == n.max()]
    if len(top) > 1 and values is not None and np.isfinite(values).any():
        med = float(np.nanmedian(values))
        return float(top[np.argmin(np.abs(top - med))]), votes
    return float(top[0]), votes


def summarise(pred: dict[str, np.ndarray]) -> dict:
    """Combine per-patch predictions (:func:`predict_patches`) into one image-level estimate.

    The class is the majority vote of the patches (ties: the class closest to
    the median continuous value); continuous values are medians.
    """
    res: dict = {"is_estimate": True, "note": NOTE}
    if "fusion" in pred:
        for key, cont, unit in (("direct", "direct", "magnification"),
                                ("area", "area_px", "area_px"),
                                ("fusion", "fusion", "magnification")):
            cls, votes = _vote(pred[f"{key}_class"], pred[cont] if unit != "area_px" else None)
            res[key] = {unit: float(np.nanmedian(pred[cont])), "class": cls, "votes": votes}
        res["method"] = "fusion"
        main = res["fusion"]
        res["magnification_continuous"] = main["magnification"]
    if "baseline_class" in pred:
        cls, votes = _vote(pred["baseline_class"], pred["baseline_class"])
        a = pred["baseline_area_px"]
        res["baseline"] = {"area_px": float(np.nanmedian(a)) if np.isfinite(a).any() else None,
                           "n_nuclei": int(pred["baseline_n"].sum()), "class": cls,
                           "votes": votes}
        if "method" not in res:
            res["method"] = "baseline"
            main = res["baseline"]
            res["magnification_continuous"] = cls
    m = main["class"]
    res["magnification"] = m
    res["mpp_estimate"] = 10.0 / m if np.isfinite(m) and m > 0 else None
    res["votes"] = main["votes"]
    return res


def estimate(image: str | os.PathLike | np.ndarray, model: str | os.PathLike |
             MagnificationModel | None = None, *, method: str = "physical", mode: str = "auto",
             max_tiles: int = 16, alpha: float | None = None, device: str = "cpu",
             tta: bool = True, progress: ProgressCallback | None = None,
             cancel: CancelCallback | None = None) -> dict:
    """Estimate the magnification of an image without metadata (figure, screenshot, export).

    Parameters
    ----------
    image : path or numpy.ndarray
        PNG/JPEG/TIFF file or a ``(y, x, 3)`` array, any size.
    model : path or MagnificationModel, optional
        A trained CNN fusion model; combined with the physical estimate only
        where the two agree, else the disagreement is reported
        (:func:`~magnipath.magnification._regions.estimate_regions`).
    method : {"physical", "baseline"}
        Without a model: nucleus sizes in µm (default; no training,
        :mod:`~magnipath.magnification._physical`) or Otálora's Otsu baseline.
    mode : {"auto", "center", "tiles"}
        How the model and the baseline cut 224 px tiles (the physical estimate
        uses all pixels, or the blocks with most tissue of large images).
    alpha : float, optional
        Fusion weight (default: the model's, 0.2).
    device : str
        Torch device for the model.
    tta : bool
        Average the model's outputs over the 8 rotations and mirror images of
        each tile (see :func:`predict_patches`).

    Returns
    -------
    dict
        ``magnification`` (the class; None when it cannot estimate),
        ``magnification_continuous``, ``mpp_estimate`` (µm/px of the image =
        10 / magnification), ``is_estimate`` (always True), ``method``
        (``"physical"``, ``"physical+fusion"``, ``"fusion"`` or ``"baseline"``),
        ``physical`` (size ruler details, interval, confidence),
        ``cannot_estimate`` (the reason, when there is no answer),
        ``disagreement`` (model vs physical), ``region_boxes`` (image pixels
        ``(x, y, w, h)``), ``tile_boxes`` and ``n_tiles`` (the 224 px tiles of a
        model or the baseline, else the regions) and ``image_shape``.
    """
    from magnipath.magnification._regions import estimate_regions, image_regions

    img = read_image(image) if isinstance(image, str | os.PathLike) else as_rgb(image)
    if min(img.shape[:2]) < 32:
        raise MagnificationError(f"the image is {img.shape[1]} x {img.shape[0]} px; at least "
                                 "32 px a side is needed.")
    if isinstance(model, str | os.PathLike):
        model = load_model(model, device=device)
    regions, boxes = image_regions(img)
    res = estimate_regions(regions, model, method=method, boxes=boxes, mode=mode,
                           max_tiles=max_tiles, alpha=alpha, tta=tta, progress=progress,
                           cancel=cancel)
    res.update(region_boxes=[list(b) for b in boxes], image_shape=list(img.shape[:2]))
    return res
