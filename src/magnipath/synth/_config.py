"""Configuration and result of the synthetic slide generator, and its error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from magnipath.synth._errors import SynthError
from magnipath.synth._scanner import Scanner

__all__ = ["COMPRESSIONS", "SynthConfig", "SynthError", "SynthResult"]

COMPRESSIONS = ("jpeg", "zlib")


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one synthetic slide.

    Attributes
    ----------
    width, height : int
        Size of level 0 in pixels.
    mpp : float
        Resolution of level 0 in µm per pixel (0.25 = 40x).
    seed : int
        Everything (layout, textures, nuclei, partial annotations) is a
        deterministic function of the seed and the size.
    tile : int
        TIFF tile side in pixels (a multiple of 16).
    compression : str
        ``"jpeg"`` (lossy, YCbCr 4:2:0) or ``"zlib"`` (lossless).
    quality : int
        JPEG quality 1..100 (ignored for zlib).
    density : float
        Multiplier of the expected number of tissue features per mm² of tissue
        (carcinoma nests, TLS, benign lobules, adipose regions).
    mitoses_per_mm2 : float
        Expected number of mitotic figures per mm² of carcinoma.
    partial_gap_um : float
        Width in µm of the unlabelled gap the partial annotations leave at class
        boundaries (each side is shrunk by half of it).
    partial_keep : float
        Fraction of components kept in the partial annotations.
    scanner : Scanner
        Stain and scanner appearance (stain vectors, intensities, glass tint,
        blur, JPEG quality); it never changes the layout or the ground truth.
    """

    width: int = 8192
    height: int = 8192
    mpp: float = 0.25
    seed: int = 0
    tile: int = 512
    compression: str = "jpeg"
    quality: int = 90
    density: float = 1.0
    mitoses_per_mm2: float = 40.0
    partial_gap_um: float = 15.0
    partial_keep: float = 0.8
    scanner: Scanner = field(default_factory=Scanner)

    @property
    def jpeg_quality(self) -> int:
        """The JPEG quality used: the scanner's when it sets one, else ``quality``."""
        return int(self.scanner.quality if self.scanner.quality is not None else self.quality)

    def validate(self) -> SynthConfig:
        """Return ``self`` or raise :class:`SynthError` naming the bad field."""
        def bad(name: str, why: str) -> SynthError:
            return SynthError(f"synthetic slide setting {name}={getattr(self, name)!r}: {why}")

        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 64:
                raise bad(name, "give a whole number of pixels, at least 64")
            if v > 1_000_000:
                raise bad(name, "at most 1,000,000 pixels")
        if not (0.05 <= float(self.mpp) <= 16.0):
            raise bad("mpp", "give µm per pixel between 0.05 and 16 (0.25 = 40x)")
        if not isinstance(self.tile, int) or self.tile < 64 or self.tile % 16:
            raise bad("tile", "give a tile side in pixels that is a multiple of 16, at least 64")
        if self.compression not in COMPRESSIONS:
            raise bad("compression", f"choose one of {', '.join(COMPRESSIONS)}")
        if not (1 <= int(self.quality) <= 100):
            raise bad("quality", "JPEG quality must be between 1 and 100")
        if not (0.0 <= self.density <= 20.0):
            raise bad("density", "give a multiplier between 0 and 20")
        if not (0.0 <= self.mitoses_per_mm2 <= 10_000.0):
            raise bad("mitoses_per_mm2", "give a non-negative number per mm² of carcinoma")
        if not (0.0 <= self.partial_gap_um <= 200.0):
            raise bad("partial_gap_um", "give a gap between 0 and 200 µm")
        if not (0.0 < self.partial_keep <= 1.0):
            raise bad("partial_keep", "give a fraction in (0, 1]")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "give a non-negative whole number")
        if not isinstance(self.scanner, Scanner):
            raise bad("scanner", "give a magnipath.synth.Scanner")
        self.scanner.validate()
        return self


@dataclass
class SynthResult:
    """What :func:`magnipath.synth.synthesize` wrote.

    Attributes
    ----------
    slide : Path
        The pyramidal TIFF.
    truth : Path
        Exhaustive class polygons (QuPath GeoJSON, level-0 pixels).
    partial : Path
        DMMN-style partial annotations (QuPath GeoJSON).
    mitoses : Path
        Mitotic figures as points of class ``Mitosis`` (QuPath GeoJSON).
    n_objects : dict of str -> int
        Connected components per class in the exhaustive truth.
    n_mitoses : int
    seconds : float
        Wall time of the whole run.
    levels : list of (int, int)
        ``(height, width)`` of every pyramid level, level 0 first.
    config : SynthConfig
        The settings used.
    n_partial : dict of str -> int
        Objects per class in the partial annotations.
    """

    slide: Path
    truth: Path
    partial: Path
    mitoses: Path
    n_objects: dict[str, int]
    n_mitoses: int
    seconds: float
    levels: list[tuple[int, int]]
    config: SynthConfig = field(default_factory=SynthConfig)
    n_partial: dict[str, int] = field(default_factory=dict)
