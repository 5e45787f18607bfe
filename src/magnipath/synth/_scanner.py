"""How a slide is stained and scanned: stain vectors, intensities, blur, tint, JPEG.

A :class:`Scanner` changes only the appearance of a synthetic slide, never its
layout: the same seed and size under two scanners give the same ground truth,
nuclei and textures (the same stain optical densities), rendered through other
stain vectors, staining intensities, illumination, glass tint, optical blur and
JPEG quality. Named presets (:data:`SCANNER_PRESETS`) stand for typical lab and
scanner differences; ``"reference"`` is the default look.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from magnipath.synth._errors import SynthError

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Scanner:
    """Stain and scanner settings of a synthetic slide (appearance only).

    Attributes
    ----------
    name : str
        Label for the record (a preset name or ``"custom"``).
    h_vector, e_vector : (float, float, float) or None
        Optical-density directions (r, g, b) of haematoxylin and eosin before the
        per-slide variation; None = the standard vectors. Normalised to unit length.
    h_scale, e_scale : float
        Staining intensity: multipliers of the haematoxylin and eosin optical
        densities (1 = standard; 0.6 = faded, 1.4 = overstained).
    brightness : float
        Illumination relative to a white-balanced scan (1 = white glass at 255).
    glass : (float, float, float) or None
        Optical density (r, g, b) of the bare glass, i.e. the background tint
        (a larger blue value gives a yellow tint); None = the per-slide default
        (about 0.02-0.04 per channel, near white).
    blur_um : float
        Standard deviation in µm of a Gaussian optical blur (0 = sharp).
    quality : int or None
        JPEG quality of the written tiles; None = the slide setting's.
    """

    name: str = "reference"
    h_vector: Vec3 | None = None
    e_vector: Vec3 | None = None
    h_scale: float = 1.0
    e_scale: float = 1.0
    brightness: float = 1.0
    glass: Vec3 | None = None
    blur_um: float = 0.0
    quality: int | None = None

    def validate(self) -> Scanner:
        """Return ``self`` or raise :class:`SynthError` naming the bad field."""
        def bad(name: str, why: str) -> SynthError:
            return SynthError(f"stain/scanner setting {name}={getattr(self, name)!r}: {why}")

        for name in ("h_vector", "e_vector", "glass"):
            v = getattr(self, name)
            if v is None:
                continue
            if len(v) != 3 or any(not (0.0 <= float(c) <= 3.0) for c in v):
                raise bad(name, "give three optical densities (r, g, b) between 0 and 3")
            if name != "glass" and sum(float(c) for c in v) <= 0:
                raise bad(name, "a stain vector needs at least one positive component")
        for name in ("h_scale", "e_scale"):
            if not (0.05 <= float(getattr(self, name)) <= 4.0):
                raise bad(name, "give a staining intensity factor between 0.05 and 4")
        if not (0.5 <= float(self.brightness) <= 1.5):
            raise bad("brightness", "give an illumination factor between 0.5 and 1.5")
        if not (0.0 <= float(self.blur_um) <= 10.0):
            raise bad("blur_um", "give a blur in µm between 0 and 10")
        if self.quality is not None and not (1 <= int(self.quality) <= 100):
            raise bad("quality", "JPEG quality must be between 1 and 100")
        return self

    def replace(self, **changes) -> Scanner:
        """A copy with ``changes`` applied (None values are ignored); named ``custom``."""
        ch = {k: v for k, v in changes.items() if v is not None}
        if ch and "name" not in ch:
            ch["name"] = f"{self.name}+custom" if self.name != "reference" else "custom"
        return dataclasses.replace(self, **ch)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)


SCANNER_PRESETS: dict[str, Scanner] = {
    "reference": Scanner(),
    # understained or faded sections, a slightly brighter lamp
    "faded": Scanner("faded", h_scale=0.6, e_scale=0.55, brightness=1.0),
    # overstained, haematoxylin bluer and darker, eosin deeper
    "intense": Scanner("intense", h_vector=(0.55, 0.72, 0.42), h_scale=1.35, e_scale=1.35),
    # another scanner: bluish-purple haematoxylin, magenta eosin, cool glass, softer
    # optics and stronger JPEG compression
    "scanner-b": Scanner("scanner-b", h_vector=(0.50, 0.72, 0.48),
                         e_vector=(0.12, 0.95, 0.30), glass=(0.06, 0.04, 0.01),
                         blur_um=0.5, quality=60),
    # yellowed mounting medium / warm lamp: yellow glass, paler eosin, a dimmer image
    "yellow": Scanner("yellow", e_scale=0.8, brightness=0.93, glass=(0.02, 0.05, 0.16),
                      quality=75),
}
"""Named stain/scanner looks for ``magnipath synth --stain NAME``."""


def get_scanner(name: str) -> Scanner:
    """The preset called ``name`` (case-insensitive); :class:`SynthError` lists the choices."""
    key = name.strip().lower()
    if key not in SCANNER_PRESETS:
        raise SynthError(f"unknown stain preset {name!r}; choose one of "
                         f"{', '.join(SCANNER_PRESETS)}")
    return SCANNER_PRESETS[key]
