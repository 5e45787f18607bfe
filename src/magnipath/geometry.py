"""Input geometry of tiles: a target tile and its concentric context inputs.

A :class:`TileGeometry` is stored with every dataset and every model card so
that tiling, training and inference use exactly the same fields of view.

Every input ``i`` is an RGB image of ``size x size`` pixels at resolution
``mpp`` (µm/px), centred on the centre of the target tile. DMMN (Ho et al.)
uses a 256 px target at 20x (0.5 µm/px) plus the centre 512 px at 20x seen at
10x and the whole 1024 px at 20x seen at 5x, all 256 px.
"""

from __future__ import annotations

from dataclasses import dataclass

from magnipath.types import Box


@dataclass(frozen=True)
class InputSpec:
    """One model input: ``size`` x ``size`` pixels at ``mpp`` µm/px."""

    mpp: float
    size: int

    @property
    def magnification(self) -> float:
        return 10.0 / self.mpp

    @property
    def field_um(self) -> float:
        """Side length of the field of view in µm."""
        return self.mpp * self.size


@dataclass(frozen=True)
class TileGeometry:
    """A target tile and its inputs.

    Attributes
    ----------
    target_size : int
        Side of the target (label) tile in pixels at ``target_mpp``.
    target_mpp : float
        Resolution of the target tile and its label, µm/px.
    inputs : tuple of InputSpec
        Model inputs, first the target itself, then context inputs, each
        centred on the target's centre.
    """

    target_size: int
    target_mpp: float
    inputs: tuple[InputSpec, ...]

    @classmethod
    def single(cls, mpp: float, size: int) -> TileGeometry:
        """One input: the target tile itself."""
        return cls(size, float(mpp), (InputSpec(float(mpp), size),))

    @classmethod
    def with_context(cls, mpp: float, size: int, context_mpps: list[float]) -> TileGeometry:
        """The target plus one ``size`` px input per context resolution (µm/px)."""
        return cls(size, float(mpp), (InputSpec(float(mpp), size),
                                      *(InputSpec(float(m), size) for m in context_mpps)))

    @classmethod
    def dmmn(cls, mpp: float = 0.5, size: int = 256) -> TileGeometry:
        """Ho et al.'s 20x/10x/5x stack: target at ``mpp``, context at 2x and 4x ``mpp``."""
        return cls.with_context(mpp, size, [2 * mpp, 4 * mpp])

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def target_field_um(self) -> float:
        return self.target_size * self.target_mpp

    def target_box(self, x: float, y: float, slide_mpp: float) -> Box:
        """Level-0 box of the target tile whose top-left corner is level-0 (x, y)."""
        side = self.target_field_um / slide_mpp
        return (x, y, side, side)

    def input_boxes(self, target_box: Box, slide_mpp: float) -> list[Box]:
        """Level-0 boxes of every input, concentric with ``target_box``.

        Parameters
        ----------
        target_box : Box
            Target tile ``(x, y, w, h)`` in level-0 pixels.
        slide_mpp : float
            Level-0 resolution of the slide, µm/px.
        """
        x, y, w, h = target_box
        cx, cy = x + w / 2, y + h / 2
        out = []
        for inp in self.inputs:
            side = inp.field_um / slide_mpp
            out.append((cx - side / 2, cy - side / 2, side, side))
        return out

    def to_dict(self) -> dict:
        return {"target_size": self.target_size, "target_mpp": self.target_mpp,
                "inputs": [{"mpp": i.mpp, "size": i.size, "magnification": i.magnification}
                           for i in self.inputs]}

    @classmethod
    def from_dict(cls, d: dict) -> TileGeometry:
        return cls(int(d["target_size"]), float(d["target_mpp"]),
                   tuple(InputSpec(float(i["mpp"]), int(i["size"])) for i in d["inputs"]))
