"""Stain and scanner augmentation for training: HED-space jitter, Macenko re-staining, JPEG.

All act on a whole sample (every input of it, the same way: the inputs of a
sample come from one slide, so they share its stain and its scanner):

* **HED jitter** (after Tellez et al., 2018/2019): the RGB optical density
  ``OD = -ln(x)`` (``x`` in (0, 1]) is split into haematoxylin, eosin and
  residual (DAB) concentrations with Ruifrok and Johnston's fixed stain matrix,
  each concentration becomes ``c * a + b`` with ``ln a`` uniform in ``± scale``
  and ``b`` uniform in ``± shift`` (OD units), and the image is re-rendered with
  the stain vectors perturbed per component by factors ``exp(± vectors)``
  (another lab's stain hues);
* **Macenko re-staining** (probability ``macenko``): the sample's own stain
  vectors are estimated by Macenko's method (:mod:`magnipath.stain`), its
  concentrations are scaled to a random reference intensity and rendered with
  random reference vectors (the standard ones perturbed as above);
* **JPEG** (``jpeg``: the lowest quality, 0 = off): half the samples are
  JPEG-compressed (Pillow, 4:2:0 chroma) at a quality drawn uniformly from
  ``jpeg..95``, after the stain changes, as a scanner compresses the stained
  section. Slides written at another scanner's JPEG quality were the largest
  remaining shift once stains are normalised: on ``synth --stain scanner-b`` (quality
  60) a model trained on quality-90 slides lost 0.061 mIoU, 0.012 without the JPEG
  (docs/benchmarks.md).

Settings (``TrainConfig.stain_augment``): ``scale``, ``shift``, ``vectors``,
``macenko``, ``jpeg``; :data:`DEFAULT_STAIN_AUGMENT` is on by default, ``{}`` turns it
off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

DEFAULT_STAIN_AUGMENT: dict[str, float] = {"scale": 0.35, "shift": 0.03, "vectors": 0.1,
                                           "macenko": 0.0, "jpeg": 50}
"""HED jitter: ``ln`` of the concentration factor in ``± scale``, offset in ``± shift`` OD,
stain-vector components times ``exp(± vectors)``; Macenko re-staining probability; JPEG
quality range ``jpeg..95`` for half the samples (50 is our choice: it spans the qualities of
the ``synth --stain`` looks, 60-90, with room below)."""

DEMO_STAIN_AUGMENT: dict[str, float] = {"scale": 0.15, "shift": 0.01, "vectors": 0.05,
                                        "macenko": 0.0}
"""The demo preset's HED jitter: about half of the default's. The demo's slides share one
stain; the default jitter (made for other labs' slides) slowed the learning of the pale and
thin classes (fat against glass, benign duct walls) past the demo's 30 epochs."""

KEYS = ("scale", "shift", "vectors", "macenko", "jpeg")
JPEG_MAX = 95
"""Highest JPEG quality drawn by the ``jpeg`` augmentation."""
JPEG_P = 0.5
"""Fraction of the samples JPEG-compressed when ``jpeg`` is on."""

_HED = np.array([[0.65, 0.70, 0.29],   # Ruifrok & Johnston (2001): haematoxylin
                 [0.07, 0.99, 0.11],   # eosin
                 [0.27, 0.57, 0.78]])  # DAB (residual for H&E)
_HED = _HED / np.linalg.norm(_HED, axis=1, keepdims=True)
_MIN = 1.0 / 255.0


def check_stain_augment(settings: dict[str, Any]) -> str | None:
    """Why ``settings`` are not valid stain-augmentation settings, or None when they are."""
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        return f"unknown keys {unknown}; known: {list(KEYS)}"
    for k, v in settings.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            return f"{k}={v!r} is not a number"
        if k == "jpeg":
            if f != 0 and not 1 <= f <= JPEG_MAX:
                return f"jpeg={v!r} must be 0 (off) or a JPEG quality between 1 and {JPEG_MAX}"
            continue
        limit = 1.0 if k == "macenko" else 2.0
        if not 0.0 <= f <= limit:
            return f"{k}={v!r} must be between 0 and {limit:g}"
    return None


def _perturbed(m: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    if amount <= 0:
        return m
    p = m * np.exp(rng.uniform(-amount, amount, m.shape))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def _render(conc: torch.Tensor, vectors: np.ndarray) -> torch.Tensor:
    """``(n, k, H, W)`` concentrations x ``(k, 3)`` vectors -> RGB in (0, 1]."""
    v = torch.as_tensor(vectors, dtype=torch.float32)
    od = torch.einsum("nkhw,kc->nchw", conc, v)
    return torch.exp(-od.clamp_(min=0.0))


def hed_jitter(images: torch.Tensor, rng: np.random.Generator, scale: float, shift: float,
               vectors: float) -> torch.Tensor:
    """HED-space jitter of float ``(n_inputs, 3, S, S)`` images in [0, 1] (one draw for all)."""
    a = np.exp(rng.uniform(-scale, scale, 3))
    b = rng.uniform(-shift, shift, 3)
    target = _perturbed(_HED, vectors, rng)
    od = -torch.log(images.clamp(min=_MIN))
    inv = torch.as_tensor(np.linalg.inv(_HED), dtype=torch.float32)  # OD (.., 3) @ inv -> C
    conc = torch.einsum("nchw,ck->nkhw", od, inv)
    conc = conc * torch.as_tensor(a, dtype=torch.float32).view(1, 3, 1, 1) \
        + torch.as_tensor(b, dtype=torch.float32).view(1, 3, 1, 1)
    return _render(conc, target).clamp_(0.0, 1.0)


def macenko_restain(images: torch.Tensor, rng: np.random.Generator,
                    vectors: float) -> torch.Tensor:
    """Re-stain ``(n_inputs, 3, S, S)`` images to a random reference (Macenko), or as they are
    when the target input has too little tissue for the estimate."""
    from magnipath.stain import REFERENCE_MAX_CONC, REFERENCE_VECTORS, StainError, macenko_vectors

    rgb = (images[0].permute(1, 2, 0).numpy() * 255.0)
    try:
        src = macenko_vectors(rgb)
    except StainError:
        return images
    od = -torch.log(images.clamp(min=_MIN))
    pinv = torch.as_tensor(np.linalg.pinv(src), dtype=torch.float32)  # (3, 2)
    conc = torch.einsum("nchw,ck->nkhw", od, pinv).clamp_(min=0.0)
    c0 = conc[0].reshape(2, -1)
    smax = torch.quantile(c0, 0.99, dim=1).clamp_(min=1e-3)
    tmax = REFERENCE_MAX_CONC * np.exp(rng.uniform(-0.3, 0.3, 2))
    conc = conc * (torch.as_tensor(tmax, dtype=torch.float32) / smax).view(1, 2, 1, 1)
    return _render(conc, _perturbed(REFERENCE_VECTORS, max(vectors, 0.05), rng)).clamp_(0, 1)


def jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Every input of float ``(n_inputs, 3, S, S)`` images in [0, 1] JPEG-compressed at
    ``quality`` (Pillow, 4:2:0 chroma subsampling) and decoded again."""
    import io

    from PIL import Image

    u8 = (images.clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(u8)
    for k in range(u8.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(u8[k]).save(buf, format="JPEG", quality=int(quality), subsampling=2)
        buf.seek(0)
        with Image.open(buf) as im:
            out[k] = np.asarray(im.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def stain_augment(images: torch.Tensor, rng: np.random.Generator,
                  settings: dict[str, Any]) -> torch.Tensor:
    """Apply the stain augmentation ``settings`` to one sample's float images in [0, 1].

    Parameters
    ----------
    images : Tensor
        float ``(n_inputs, 3, S, S)`` in [0, 1], target input first.
    rng : numpy.random.Generator
        The sample's stain stream.
    settings : dict
        ``scale``, ``shift``, ``vectors``, ``macenko``, ``jpeg``
        (:data:`DEFAULT_STAIN_AUGMENT`).
    """
    scale = float(settings.get("scale", 0.0))
    shift = float(settings.get("shift", 0.0))
    vectors = float(settings.get("vectors", 0.0))
    p = float(settings.get("macenko", 0.0))
    if p > 0 and rng.random() < p:
        images = macenko_restain(images, rng, vectors)
    if scale > 0 or shift > 0 or vectors > 0:
        images = hed_jitter(images, rng, scale, shift, vectors)
    q_min = int(settings.get("jpeg", 0))
    if q_min > 0 and rng.random() < JPEG_P:
        images = jpeg_roundtrip(images, int(rng.integers(q_min, JPEG_MAX + 1)))
    return images.contiguous()


def training_stain_reference(dataset: Any, tiles: np.ndarray, seed: int,
                             max_tiles: int = 64) -> dict | None:
    """The stain reference (:class:`magnipath.stainnorm.StainReference` as a dict) of the
    target inputs of up to ``max_tiles`` training tiles (evenly spread), or None when they
    hold too little stained tissue. Stored in the model card for ``--normalise-stain``.

    The stain vectors are read on level-0 patches of the tiles' slides (the dataset's
    manifest names them) when every one of those slides can still be opened, else on the
    tiles themselves (``vector_mpp`` None); see :mod:`magnipath.stainnorm`."""
    from magnipath.stain import StainError
    from magnipath.stainnorm import measure_reference

    idx = np.unique(np.asarray(tiles, dtype=np.int64))
    if len(idx) == 0:
        return None
    pick = idx[np.linspace(0, len(idx) - 1, min(max_tiles, len(idx))).round().astype(int)]
    patches, mpp = _level0_patches(dataset, pick)
    try:
        ref = measure_reference((dataset.images(int(t))[0] for t in pick), seed=seed,
                                vector_images=patches, vector_mpp=mpp)
    except StainError:
        return None
    return {**ref.to_dict(), "tiles": len(pick)}


def _level0_patches(dataset: Any, pick: np.ndarray) -> tuple[list | None, float | None]:
    """Level-0 patches centred in the tiles ``pick`` and the median level-0 µm/px of their
    slides, or ``(None, None)`` when a slide cannot be opened (moved, deleted)."""
    from magnipath._errors import MagnipathError
    from magnipath.slide import open_slide
    from magnipath.stainnorm import full_resolution_patches

    slides = {s["slide_id"]: s for s in dataset.manifest.get("slides", [])}
    by_slide: dict[str, list] = {}
    for t in pick:
        rec = dataset.records[int(t)]
        by_slide.setdefault(rec["slide_id"], []).append(tuple(rec["box"]))
    patches, mpps = [], []
    try:
        for sid, boxes in by_slide.items():
            info = slides[sid]
            with open_slide(info["path"], mpp=info.get("mpp")) as sl:
                patches += full_resolution_patches(sl, boxes)
                mpps += [float(sl.mpp)] * len(boxes)
    except (KeyError, OSError, MagnipathError):
        return None, None
    return patches, float(np.median(mpps))
