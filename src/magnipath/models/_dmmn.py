"""DSMN-S2 and the Deep Multi-Magnification Networks DMMN-MS, DMMN-M2S, DMMN-M3.

Ho et al., "Deep Multi-Magnification Networks for multi-class breast cancer image
segmentation" (papers/004), Fig. 4. Every model takes ``inputs``: a list of tensors
``(B, in_channels, S, S)``, input 0 the target at the highest magnification (e.g. 20x)
and input ``i >= 1`` a concentric context tile whose pixels are ``context_ratios[i-1]``
times larger (10x -> ratio 2, 5x -> ratio 4), all of the same pixel size ``S``. It
returns logits ``(B, n_classes, S, S)`` for the target tile.

Our reading of the paper's figure (the text does not give every wire):

- U-Net encoders have ``depth + 1`` levels (CONV_BLOCK at each, max-pool 2 between);
  level ``k`` has ``base * 2**k`` channels and side ``S / 2**k`` (paper: base 32,
  depth 4, i.e. U-Net with channels halved). Decoders upsample with CONV_TR_2.
- A context feature map of level ``k`` covers ``r`` times the target's field of view
  at the same side ``S / 2**k``. Centre-cropping it by ``r`` leaves exactly the
  target's field of view at ``S / (r * 2**k)``; CONV_TR_``r`` brings it back to
  ``S / 2**k`` with learned upsampling (:class:`~magnipath.models._blocks.ContextAlign`).
- DMMN-MS: one encoder per magnification, one (20x) decoder. The context encoders'
  feature maps of levels ``0..depth-1`` are aligned and concatenated with the 20x skip
  connection of the same level. The context encoders stop at level ``depth-1`` (their
  bottleneck would only reach the decoder through a crop of a ``S/2**depth`` map, which
  is inexact for the paper's ratio 4 at small tiles), so the 20x bottleneck alone
  starts the decoder.
- DMMN-M2S: a full encoder-decoder per magnification; the level-0 decoder outputs of
  the context branches are aligned (crop by 2 / 4, CONV_TR_2 / CONV_TR_4) and
  concatenated with the 20x decoder output only at the end, then CONV_FINAL.
- DMMN-M3: a full encoder-decoder per magnification; at every decoder level
  ``k = depth-1 .. 0`` the context decoders' level-``k`` outputs are aligned and
  concatenated into the 20x decoder (with its upsampled features and skip) before
  its CONV_BLOCK; CONV_FINAL on the 20x decoder output.

Tile size: ``S`` must be divisible by ``2**depth`` and every crop must be exact on
the pixel grid; for the paper's ratios (2, 4) and depth 4 that means ``S`` a multiple
of 64 (the paper's 256 is). :attr:`size_multiple` gives the step of valid sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from magnipath._errors import ModelError
from magnipath.models._blocks import (
    ContextAlign,
    UNetDecoder,
    UNetEncoder,
    check_inputs,
    conv_final,
    crop_offset,
    feature_widths,
)


def _check_ratios(context_ratios: Sequence[int]) -> tuple[int, ...]:
    ratios = tuple(int(r) for r in context_ratios)
    if any(r < 2 or r != rr for r, rr in zip(ratios, context_ratios, strict=True)):
        raise ModelError(
            f"context_ratios must be integers >= 2 (mpp of each context input divided by "
            f"the target's mpp), got {tuple(context_ratios)}."
        )
    return ratios


def _size_ok(size: int, depth: int, ratios: Sequence[int], crop_levels: int) -> bool:
    if size <= 0 or size % 2**depth:
        return False
    return all(crop_offset(size // 2**k, r) is not None for r in ratios for k in range(crop_levels))


class _Segmenter(nn.Module):
    """Common attributes: arch_name, arch_kwargs, n_inputs, context_ratios, size_multiple."""

    arch: str = ""

    def __init__(
        self,
        *,
        n_classes: int,
        in_channels: int,
        base: int,
        depth: int,
        norm: bool,
        context_ratios: Sequence[int],
        crop_levels: int,
    ) -> None:
        super().__init__()
        self.crop_levels = crop_levels  # levels 0..crop_levels-1 centre-crop context maps
        if n_classes < 1 or in_channels < 1:
            raise ModelError(
                f"n_classes and in_channels must be >= 1, got {n_classes} and {in_channels}."
            )
        self.widths = feature_widths(base, depth)
        self.context_ratios = _check_ratios(context_ratios)
        self.n_inputs = 1 + len(self.context_ratios)
        self.n_classes = n_classes
        self.in_channels = in_channels
        self.depth = depth
        self.arch_name = self.arch
        self.arch_kwargs: dict[str, Any] = {
            "n_classes": n_classes,
            "in_channels": in_channels,
            "base": base,
            "depth": depth,
            "norm": norm,
        }
        if self.context_ratios:
            self.arch_kwargs["context_ratios"] = list(self.context_ratios)
        limit = 2**depth * 2 * max((*self.context_ratios, 1)) ** 2 * 8
        self.size_multiple = next(
            s
            for s in range(1, limit + 1)
            if _size_ok(s, depth, self.context_ratios, self.crop_levels)
        )

    def _check(self, inputs: Sequence[Tensor]) -> None:
        sy, sx = check_inputs(
            inputs, n_inputs=self.n_inputs, in_channels=self.in_channels, arch=self.arch
        )
        for s in (sy, sx):
            if not _size_ok(s, self.depth, self.context_ratios, self.crop_levels):
                raise ModelError(
                    f"Model '{self.arch}' cannot take {sy}x{sx} tiles: the tile side must be "
                    f"a multiple of {self.size_multiple} (depth {self.depth}, context ratios "
                    f"{list(self.context_ratios)}). Re-tile with e.g. "
                    f"{max(1, round(s / self.size_multiple)) * self.size_multiple} px."
                )


class DSMNS2(_Segmenter):
    """DSMN-S2: a U-Net on the target input only, channels halved (base 32)."""

    arch = "dsmn-s2"

    def __init__(
        self,
        *,
        n_classes: int,
        in_channels: int = 3,
        base: int = 32,
        depth: int = 4,
        norm: bool = False,
    ) -> None:
        super().__init__(
            n_classes=n_classes,
            in_channels=in_channels,
            base=base,
            depth=depth,
            norm=norm,
            context_ratios=(),
            crop_levels=0,
        )
        w = self.widths
        self.encoder = UNetEncoder(in_channels, w, norm=norm)
        self.decoder = UNetDecoder(w, norm=norm)
        self.final = conv_final(w[0], w[0], n_classes)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[target]`` -> logits ``(B, n_classes, S, S)``."""
        self._check(inputs)
        return self.final(self.decoder(self.encoder(inputs[0]))[0])


class DMMNMS(_Segmenter):
    """DMMN-MS: one encoder per magnification, a single (target) decoder."""

    arch = "dmmn-ms"

    def __init__(
        self,
        *,
        n_classes: int,
        in_channels: int = 3,
        base: int = 32,
        depth: int = 4,
        norm: bool = False,
        context_ratios: Sequence[int] = (2, 4),
    ) -> None:
        super().__init__(
            n_classes=n_classes,
            in_channels=in_channels,
            base=base,
            depth=depth,
            norm=norm,
            context_ratios=context_ratios,
            crop_levels=depth,
        )
        w = self.widths
        n_ctx = len(self.context_ratios)
        self.encoder = UNetEncoder(in_channels, w, norm=norm)
        self.context_encoders = nn.ModuleList(
            UNetEncoder(in_channels, w[:depth], norm=norm) for _ in range(n_ctx)
        )
        self.align = nn.ModuleList(
            nn.ModuleList(ContextAlign(w[k], r) for k in range(depth)) for r in self.context_ratios
        )
        self.decoder = UNetDecoder(w, extra=[n_ctx * w[k] for k in range(depth)], norm=norm)
        self.final = conv_final(w[0], w[0], n_classes)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[target, context_1, ...]`` -> logits ``(B, n_classes, S, S)``."""
        self._check(inputs)
        ctx = [enc(x) for enc, x in zip(self.context_encoders, inputs[1:], strict=True)]
        extras = [[self.align[i][k](ctx[i][k]) for i in range(len(ctx))] for k in range(self.depth)]
        return self.final(self.decoder(self.encoder(inputs[0]), extras)[0])


class DMMNM2S(_Segmenter):
    """DMMN-M2S: encoder-decoder per magnification, concatenated once before CONV_FINAL."""

    arch = "dmmn-m2s"

    def __init__(
        self,
        *,
        n_classes: int,
        in_channels: int = 3,
        base: int = 32,
        depth: int = 4,
        norm: bool = False,
        context_ratios: Sequence[int] = (2, 4),
    ) -> None:
        super().__init__(
            n_classes=n_classes,
            in_channels=in_channels,
            base=base,
            depth=depth,
            norm=norm,
            context_ratios=context_ratios,
            crop_levels=1,
        )
        w = self.widths
        n = self.n_inputs
        self.encoders = nn.ModuleList(UNetEncoder(in_channels, w, norm=norm) for _ in range(n))
        self.decoders = nn.ModuleList(UNetDecoder(w, norm=norm) for _ in range(n))
        self.align = nn.ModuleList(ContextAlign(w[0], r) for r in self.context_ratios)
        self.final = conv_final(n * w[0], w[0], n_classes)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[target, context_1, ...]`` -> logits ``(B, n_classes, S, S)``."""
        self._check(inputs)
        outs = [
            dec(enc(x))[0] for enc, dec, x in zip(self.encoders, self.decoders, inputs, strict=True)
        ]
        parts = [outs[0], *(al(o) for al, o in zip(self.align, outs[1:], strict=True))]
        return self.final(torch.cat(parts, dim=1))


class DMMNM3(_Segmenter):
    """DMMN-M3: encoder-decoder per magnification, context decoder features concatenated
    into the target decoder at every level."""

    arch = "dmmn-m3"

    def __init__(
        self,
        *,
        n_classes: int,
        in_channels: int = 3,
        base: int = 32,
        depth: int = 4,
        norm: bool = False,
        context_ratios: Sequence[int] = (2, 4),
    ) -> None:
        super().__init__(
            n_classes=n_classes,
            in_channels=in_channels,
            base=base,
            depth=depth,
            norm=norm,
            context_ratios=context_ratios,
            crop_levels=depth,
        )
        w = self.widths
        n_ctx = len(self.context_ratios)
        self.encoder = UNetEncoder(in_channels, w, norm=norm)
        self.decoder = UNetDecoder(w, extra=[n_ctx * w[k] for k in range(depth)], norm=norm)
        self.context_encoders = nn.ModuleList(
            UNetEncoder(in_channels, w, norm=norm) for _ in range(n_ctx)
        )
        self.context_decoders = nn.ModuleList(UNetDecoder(w, norm=norm) for _ in range(n_ctx))
        self.align = nn.ModuleList(
            nn.ModuleList(ContextAlign(w[k], r) for k in range(depth)) for r in self.context_ratios
        )
        self.final = conv_final(w[0], w[0], n_classes)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[target, context_1, ...]`` -> logits ``(B, n_classes, S, S)``."""
        self._check(inputs)
        ctx = [
            dec(enc(x))
            for enc, dec, x in zip(
                self.context_encoders, self.context_decoders, inputs[1:], strict=True
            )
        ]
        extras = [[self.align[i][k](ctx[i][k]) for i in range(len(ctx))] for k in range(self.depth)]
        return self.final(self.decoder(self.encoder(inputs[0]), extras)[0])
