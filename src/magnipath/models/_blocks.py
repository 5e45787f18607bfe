"""Building blocks of the DSMN/DMMN family (Ho et al., Fig. 4) and shared shape checks.

All tensors are ``(batch, channels, y, x)`` in the pixels of the feature map they
belong to. The blocks are those the paper names:

- ``CONV_BLOCK``: two times (3x3 convolution, padding 1, ReLU) -- :func:`conv_block`;
- ``CONV_TR_u``: transposed convolution + ReLU that upsamples by ``u``; ``CONV_TR_4``
  is two ``CONV_TR_2`` in series -- :func:`conv_tr`;
- ``CONV_FINAL``: 3x3 convolution (padding 1) + ReLU + 1x1 convolution to ``C``
  channels (logits; the softmax is left to the loss / the caller) -- :func:`conv_final`;
- centre-crop by a rate ``r`` (the crop keeps the central ``1/r`` of each side) --
  :func:`center_crop`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from magnipath._errors import ModelError


def conv_block(in_channels: int, out_channels: int, *, norm: bool = False) -> nn.Sequential:
    """CONV_BLOCK: two (3x3 conv, padding 1 [, BatchNorm], ReLU) layers in series.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts of the input and output feature maps.
    norm : bool
        Insert a BatchNorm after each convolution (not in the paper; off by default).

    Returns
    -------
    torch.nn.Sequential
        Keeps the spatial size ``(y, x)`` of its input.
    """
    layers: list[nn.Module] = []
    for cin in (in_channels, out_channels):
        layers.append(nn.Conv2d(cin, out_channels, kernel_size=3, padding=1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_tr(in_channels: int, out_channels: int, rate: int) -> nn.Sequential:
    """CONV_TR_u: transposed convolution(s) + ReLU that upsample by ``rate``.

    A power-of-two rate is a chain of ``CONV_TR_2`` (kernel 2, stride 2, ReLU), as the
    paper builds ``CONV_TR_4`` from two ``CONV_TR_2``; any other integer rate is one
    transposed convolution with kernel = stride = ``rate``. Output pixel
    ``(y, x)`` depends only on input pixel ``(y // rate, x // rate)``, so the
    upsampling is exactly aligned with the grid of its input.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; the first transposed convolution maps ``in -> out``, later
        ones keep ``out``.
    rate : int
        Upsampling factor (>= 2) of each spatial side.

    Returns
    -------
    torch.nn.Sequential
        Maps ``(B, in, h, w)`` to ``(B, out, h * rate, w * rate)``.
    """
    if rate < 2:
        raise ModelError(f"CONV_TR upsampling rate must be >= 2, got {rate}.")
    steps = [2] * (rate.bit_length() - 1) if rate & (rate - 1) == 0 else [rate]
    layers: list[nn.Module] = []
    cin = in_channels
    for step in steps:
        layers.append(nn.ConvTranspose2d(cin, out_channels, kernel_size=step, stride=step))
        layers.append(nn.ReLU(inplace=True))
        cin = out_channels
    return nn.Sequential(*layers)


def conv_final(in_channels: int, mid_channels: int, n_classes: int) -> nn.Sequential:
    """CONV_FINAL: 3x3 conv (padding 1) + ReLU + 1x1 conv to ``n_classes`` logits.

    Parameters
    ----------
    in_channels : int
        Channels of the (possibly concatenated) feature map at the target resolution.
    mid_channels : int
        Channels after the 3x3 convolution.
    n_classes : int
        Output channels (one logit per class).

    Returns
    -------
    torch.nn.Sequential
        Keeps the spatial size of its input.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, n_classes, kernel_size=1),
    )


def crop_offset(size: int, rate: int) -> int | None:
    """Offset (in feature-map pixels) of the centre crop by ``rate``, or None if inexact.

    The crop keeps ``size // rate`` pixels starting at ``(size - size / rate) / 2``;
    it is exact (symmetric, on the pixel grid) only when ``size`` is divisible by
    ``rate`` and that offset is an integer.

    Parameters
    ----------
    size : int
        Side of the feature map in its own pixels.
    rate : int
        Cropping rate (>= 1).

    Returns
    -------
    int or None
        The offset, or None when the crop cannot be exact.
    """
    if size % rate:
        return None
    twice = size - size // rate
    return None if twice % 2 else twice // 2


def center_crop(x: Tensor, rate: int) -> Tensor:
    """Keep the central ``1/rate`` of each spatial side of ``x`` (all channels).

    Parameters
    ----------
    x : torch.Tensor
        ``(..., y, x)`` feature map; the last two axes are cropped.
    rate : int
        Cropping rate: 2 keeps the central half of each side, 4 the central quarter.

    Returns
    -------
    torch.Tensor
        A view of ``x`` of spatial size ``(h // rate, w // rate)``.

    Raises
    ------
    ModelError
        If a side is not divisible so that the crop is exactly centred.
    """
    if rate == 1:
        return x
    h, w = x.shape[-2], x.shape[-1]
    oy, ox = crop_offset(h, rate), crop_offset(w, rate)
    if oy is None or ox is None:
        raise ModelError(
            f"Cannot centre-crop a {h}x{w} feature map by {rate} exactly: each side must "
            f"be divisible by {rate} with an integer margin. Use a tile size that is a "
            "multiple of the model's size multiple (see the model's error on the input)."
        )
    return x[..., oy : oy + h // rate, ox : ox + w // rate]


def feature_widths(base: int, depth: int) -> list[int]:
    """Channel widths of levels ``0..depth`` of a U-Net: ``base * 2**level``.

    Parameters
    ----------
    base : int
        Channels of level 0 (paper: 32 for the half-width U-Net of DSMN/DMMN).
    depth : int
        Number of max-poolings (paper: 4).

    Returns
    -------
    list of int
        ``depth + 1`` widths, e.g. ``[32, 64, 128, 256, 512]``.
    """
    if base < 1 or depth < 1:
        raise ModelError(f"base width and depth must be >= 1, got base={base}, depth={depth}.")
    return [base * 2**level for level in range(depth + 1)]


def check_inputs(
    inputs: Sequence[Tensor], *, n_inputs: int, in_channels: int, arch: str
) -> tuple[int, int]:
    """Check the list-of-tensors calling convention and return the spatial size.

    Parameters
    ----------
    inputs : sequence of torch.Tensor
        One ``(B, in_channels, S_y, S_x)`` tensor per magnification, target first.
    n_inputs, in_channels : int
        What the model expects.
    arch : str
        Registry name, for messages.

    Returns
    -------
    tuple of int
        ``(S_y, S_x)`` shared by all inputs, in the pixels of each input.
    """
    if isinstance(inputs, Tensor) or not isinstance(inputs, Sequence):
        raise ModelError(
            f"Model '{arch}' takes a list of {n_inputs} tensor(s) (one per magnification, "
            f"target first), got {type(inputs).__name__}. Wrap a single tensor as [x]."
        )
    if len(inputs) != n_inputs:
        raise ModelError(
            f"Model '{arch}' takes {n_inputs} input(s) (target + {n_inputs - 1} context), "
            f"got {len(inputs)}. The dataset's input geometry does not match this model."
        )
    ref = inputs[0].shape
    for k, x in enumerate(inputs):
        if x.ndim != 4 or x.shape[1] != in_channels:
            raise ModelError(
                f"Model '{arch}' input {k} must be (batch, {in_channels}, y, x), "
                f"got shape {tuple(x.shape)}."
            )
        if x.shape != ref:
            raise ModelError(
                f"Model '{arch}': all inputs must have the same shape (same pixel size at "
                f"every magnification); input 0 is {tuple(ref)}, input {k} is {tuple(x.shape)}."
            )
    return int(ref[2]), int(ref[3])


class UNetEncoder(nn.Module):
    """Contracting path: CONV_BLOCK at each level, max-pool 2 between levels.

    ``forward`` returns the feature maps of levels ``0..n_levels-1``; level ``k`` has
    ``widths[k]`` channels and spatial size ``S / 2**k``.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], *, norm: bool = False) -> None:
        super().__init__()
        chans = [in_channels, *widths]
        self.blocks = nn.ModuleList(
            conv_block(chans[k], chans[k + 1], norm=norm) for k in range(len(widths))
        )
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature map of every level, finest first."""
        feats = []
        for k, block in enumerate(self.blocks):
            x = block(x if k == 0 else self.pool(x))
            feats.append(x)
        return feats


class UNetDecoder(nn.Module):
    """Expanding path: at level ``k`` (from ``depth-1`` down to 0) upsample with
    CONV_TR_2 (``widths[k+1] -> widths[k]``), concatenate the encoder skip of level ``k``
    plus ``extra[k]`` further channels (context features), then CONV_BLOCK to
    ``widths[k]``.
    """

    def __init__(
        self, widths: Sequence[int], extra: Sequence[int] | None = None, *, norm: bool = False
    ) -> None:
        super().__init__()
        depth = len(widths) - 1
        extra = list(extra) if extra is not None else [0] * depth
        self.ups = nn.ModuleList(conv_tr(widths[k + 1], widths[k], 2) for k in range(depth))
        self.blocks = nn.ModuleList(
            conv_block(2 * widths[k] + extra[k], widths[k], norm=norm) for k in range(depth)
        )

    def forward(
        self, feats: Sequence[Tensor], extras: Sequence[Sequence[Tensor]] | None = None
    ) -> list[Tensor]:
        """Decode; ``extras[k]`` are tensors concatenated at level ``k``.

        Returns the decoder output of every level ``0..depth-1`` (index = level).
        """
        depth = len(self.blocks)
        x = feats[depth]
        outs: list[Tensor] = [x] * depth
        for k in range(depth - 1, -1, -1):
            parts = [self.ups[k](x), feats[k]]
            if extras is not None:
                parts.extend(extras[k])
            x = self.blocks[k](torch.cat(parts, dim=1))
            outs[k] = x
        return outs


class ContextAlign(nn.Module):
    """Align a context feature map with the target's: centre-crop by ``rate`` (same field
    of view as the target), then CONV_TR_``rate`` (same pixel size as the target)."""

    def __init__(self, channels: int, rate: int) -> None:
        super().__init__()
        self.rate = rate
        self.up = conv_tr(channels, channels, rate)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, n, n)`` context features -> ``(B, C, n, n)`` aligned with the target."""
        return self.up(center_crop(x, self.rate))
