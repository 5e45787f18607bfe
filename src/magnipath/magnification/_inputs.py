"""What the regressors see and what they predict: input channels, stain jitter, target scaling.

*Inputs.* ``"rgb"`` (default) feeds the RGB patch normalised by ImageNet
mean/std. ``"hematoxylin"`` feeds the haematoxylin optical density of a fixed
colour deconvolution (Ruifrok and Johnston's H-E-DAB vectors, as
:func:`skimage.color.rgb2hed`), repeated into three channels so that both
architectures stay unchanged: nuclei look the same in H&E and in IHC
(haematoxylin + DAB) there, so a model keys on nucleus size rather than on colour.

*Stain jitter* (Tellez et al. 2018, "HED augmentation"): every patch's H, E and
DAB optical densities are scaled by ``U(1 - s, 1 + s)`` and shifted by
``U(-s, s)`` (natural-log OD units), then turned back into RGB.

*Targets.* ``"linear"``: the network predicts ``target / scale`` (the original
MSE on magnification / 40 and area / largest class area). ``"log"``: it predicts
``ln(target / scale)``; the classes 5..40x are then about evenly spaced
(magnification ratios 1.25-1.6) and the squared error weighs a 5x/8x mix-up as
much as a 30x/40x one, where the linear target weighs it ~10 times less (and
the area target, which grows with the magnification squared, ~100 times less).
"""

from __future__ import annotations

import numpy as np

from magnipath.magnification._core import MagnificationError

INPUTS = ("rgb", "hematoxylin")
TARGET_TRANSFORMS = ("linear", "log")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# skimage.color.rgb_from_hed / hed_from_rgb (Ruifrok & Johnston), rows H, E, DAB
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
H_CENTER, H_SCALE = 0.3, 0.3
"""Haematoxylin OD (natural log) is fed as ``(od - H_CENTER) / H_SCALE``."""


def check_input(name: str) -> str:
    """``name`` if it is one of :data:`INPUTS`, else a :class:`MagnificationError`."""
    if name not in INPUTS:
        raise MagnificationError(f"input {name!r}: choose one of {', '.join(INPUTS)}.")
    return name


def check_target_transform(name: str) -> str:
    """``name`` if it is one of :data:`TARGET_TRANSFORMS`, else a :class:`MagnificationError`."""
    if name not in TARGET_TRANSFORMS:
        raise MagnificationError(f"target transform {name!r}: choose one of "
                                 f"{', '.join(TARGET_TRANSFORMS)}.")
    return name


def optical_density(patches: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., 3)`` -> float32 optical density ``-ln(max(I, 1) / 255)``."""
    p = np.maximum(np.asarray(patches, dtype=np.float32), 1.0)
    return -np.log(p / 255.0)


def hed_jitter(patches: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random stain jitter of a batch ``(B, y, x, 3)`` uint8 (see the module docstring).

    Returns
    -------
    numpy.ndarray
        ``(B, y, x, 3)`` uint8, same frame; ``strength`` 0 returns the input.
    """
    if strength <= 0:
        return patches
    od = optical_density(patches)
    hed = od @ HED_FROM_RGB.astype(np.float32)
    b = len(patches)
    a = rng.uniform(1 - strength, 1 + strength, (b, 1, 1, 3)).astype(np.float32)
    s = rng.uniform(-strength, strength, (b, 1, 1, 3)).astype(np.float32)
    od = np.maximum(hed * a + s, 0.0) @ RGB_FROM_HED.astype(np.float32)
    return np.clip(np.rint(255.0 * np.exp(-od)), 0, 255).astype(np.uint8)


def blur_jitter(patches: np.ndarray, max_sigma: float, rng: np.random.Generator,
                p: float = 0.5) -> np.ndarray:
    """Random Gaussian blur of a batch ``(B, y, x, 3)`` uint8 (focus and optics jitter).

    Each patch is blurred with probability ``p`` by a Gaussian of standard deviation
    ``U(0, max_sigma)`` pixels over ``(y, x)``. Real scans and figures are softer at
    the pixel level than rendered or downsampled patches, and the sharpness of the
    pixels otherwise becomes a cue for the magnification that does not transfer.

    Returns
    -------
    numpy.ndarray
        ``(B, y, x, 3)`` uint8, same frame; ``max_sigma`` 0 returns the input.
    """
    if max_sigma <= 0:
        return patches
    from scipy.ndimage import gaussian_filter

    out = np.array(patches, copy=True)
    for i in range(len(out)):
        if rng.random() < p:
            sigma = float(rng.uniform(0.0, max_sigma))
            out[i] = gaussian_filter(out[i].astype(np.float32), (sigma, sigma, 0),
                                     mode="reflect").round().clip(0, 255).astype(np.uint8)
    return out


def hematoxylin(patches: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density ``(B, y, x)`` float32 of RGB patches (fixed vectors)."""
    return optical_density(patches) @ HED_FROM_RGB[:, 0].astype(np.float32)


def to_input(patches: np.ndarray, device="cpu", mode: str = "rgb",
             channels_last: bool = False):
    """``(B, y, x, 3)`` uint8 -> the network's float32 input ``(B, 3, y, x)`` on ``device``.

    ``"rgb"``: ``(I / 255 - mean) / std`` (ImageNet); ``"hematoxylin"``: the
    haematoxylin OD, centred and scaled, in all three channels.
    """
    import torch

    if check_input(mode) == "rgb":
        x = torch.from_numpy(np.array(patches, dtype=np.uint8)).to(device)  # a writable copy
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(_STD, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    else:
        h = (hematoxylin(patches) - H_CENTER) / H_SCALE
        x = torch.from_numpy(np.ascontiguousarray(h)).to(device)[:, None].expand(-1, 3, -1, -1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def encode_target(values: np.ndarray, scale: float, transform: str = "linear") -> np.ndarray:
    """Targets (magnification or area px) -> what the network predicts (NaN stays NaN)."""
    v = np.asarray(values, dtype=np.float64) / scale
    if check_target_transform(transform) == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    return v


def decode_target(outputs: np.ndarray, scale: float, transform: str = "linear") -> np.ndarray:
    """Network outputs -> targets in their units (inverse of :func:`encode_target`)."""
    o = np.asarray(outputs, dtype=np.float64)
    if check_target_transform(transform) == "log":
        return scale * np.exp(o)
    return scale * o
