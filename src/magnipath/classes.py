"""Class maps: QuPath path classes (name + colour) <-> label indices.

What comes in from QuPath goes back out with the same names and colours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from magnipath._errors import AnnotationError
from magnipath.types import RGB

IGNORE_INDEX = 255
"""Label value of pixels that no annotation covers (partial annotations)."""


@dataclass(frozen=True)
class ClassSpec:
    """One class: QuPath path-class name, label index and display colour (r, g, b)."""

    name: str
    index: int
    color: RGB


def _default_color(index: int) -> RGB:
    palette = [(128, 128, 128), (150, 200, 150), (200, 0, 0), (0, 180, 180),
               (30, 30, 200), (90, 50, 50), (250, 220, 130), (200, 0, 200)]
    return palette[index % len(palette)]


@dataclass(frozen=True)
class ClassMap:
    """An ordered set of classes with unique names and indices.

    Attributes
    ----------
    classes : tuple of ClassSpec
        Sorted by index. Indices are 0..n-1 for models; ``ignore_index`` marks
        unlabelled pixels.
    ignore_index : int
        Label value of pixels no annotation covers (default 255).
    """

    classes: tuple[ClassSpec, ...]
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        idx = [c.index for c in self.classes]
        if len(set(names)) != len(names):
            raise AnnotationError(f"class map has duplicate names: {names}")
        if len(set(idx)) != len(idx):
            raise AnnotationError(f"class map has duplicate indices: {idx}")
        if self.ignore_index in idx:
            raise AnnotationError(
                f"class index {self.ignore_index} is the ignore index; pick another index")
        object.__setattr__(self, "classes", tuple(sorted(self.classes, key=lambda c: c.index)))

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_names(cls, names: Iterable[str], colors: Mapping[str, RGB] | None = None,
                   ignore_index: int = IGNORE_INDEX) -> ClassMap:
        """Index classes 0..n-1 in the order given, colours from ``colors`` or a palette."""
        colors = dict(colors or {})
        return cls(tuple(ClassSpec(n, i, tuple(colors.get(n, _default_color(i))))  # type: ignore[arg-type]
                         for i, n in enumerate(names)), ignore_index)

    @classmethod
    def parse(cls, text: str, colors: Mapping[str, RGB] | None = None) -> ClassMap:
        """Parse ``"Stroma=1,Carcinoma=2"``, ``"Stroma,Carcinoma"`` or a JSON file path.

        A JSON file holds ``{"classes": [{"name", "index", "color"}], "ignore_index"}``
        or a plain ``{name: index}`` object.
        """
        p = Path(text)
        if text.endswith(".json") or p.is_file():
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise AnnotationError(f"cannot read class map {p}: {e}") from e
            return cls.from_dict(data)
        colors = dict(colors or {})
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            raise AnnotationError("empty class map; give e.g. 'Stroma=1,Carcinoma=2'")
        if all("=" in s for s in items):
            specs = []
            for s in items:
                name, _, idx = s.rpartition("=")
                try:
                    i = int(idx)
                except ValueError as e:
                    raise AnnotationError(f"class map entry {s!r}: index must be an integer") from e
                specs.append(ClassSpec(name.strip(), i,
                                       tuple(colors.get(name.strip(), _default_color(i)))))  # type: ignore[arg-type]
            return cls(tuple(specs))
        return cls.from_names(items, colors)

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassMap:
        """Inverse of :meth:`to_dict`; also accepts a plain ``{name: index}`` mapping."""
        if "classes" in data:
            specs = []
            for c in data["classes"]:
                color = c.get("color") or _default_color(int(c["index"]))
                specs.append(ClassSpec(str(c["name"]), int(c["index"]),
                                       tuple(int(v) for v in color)))  # type: ignore[arg-type]
            return cls(tuple(specs), int(data.get("ignore_index", IGNORE_INDEX)))
        return cls(tuple(ClassSpec(str(k), int(v), _default_color(int(v)))
                         for k, v in data.items()))

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"classes": [...], "ignore_index": int}``."""
        return {"classes": [{"name": c.name, "index": c.index, "color": list(c.color)}
                            for c in self.classes], "ignore_index": self.ignore_index}

    # -- queries ------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def n_classes(self) -> int:
        """Number of label channels a model needs: max index + 1."""
        return max(c.index for c in self.classes) + 1 if self.classes else 0

    def index_of(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.index
        raise AnnotationError(f"class {name!r} is not in the class map {self.names}")

    def by_index(self, index: int) -> ClassSpec:
        for c in self.classes:
            if c.index == index:
                return c
        raise KeyError(index)

    def lookup(self, names: Iterable[str | None]) -> list[int]:
        """Indices of ``names``; raises one error listing every name not in the map."""
        names = list(names)
        missing = sorted({str(n) for n in names if n not in self.names})
        if missing:
            raise AnnotationError(
                f"annotation classes {missing} are not in the class map {self.names}; "
                "add them to --classes (e.g. 'Stroma=1,Tumor=2') or remove those annotations")
        return [self.index_of(n) for n in names]  # type: ignore[arg-type]
