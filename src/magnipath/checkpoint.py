"""Checkpoints and the model card that travels with every trained model.

A model folder written by :func:`magnipath.train.train` holds::

    MODEL_DIR/
      best.pt            weights of the epoch with the best validation score + card
      last.pt            weights, optimiser, RNG and loop state of the last epoch + card
      model_card.json    the card (same as in best.pt after training ends), for people
      history.csv/.json  metrics per epoch;  curve.png, balance.png  plots

The :class:`ModelCard` records what inference needs to use the model exactly as
it was trained: the architecture and its arguments, the classes (QuPath path
class names, colours, label indices), the ignore index, the input geometry
(target size and the µm/px of each concentric input, copied from the tile
dataset), the input normalisation, the training configuration and seed, the
best and last metrics, the dataset and split identity, and library versions.

Input normalisation (stored in the card, applied by :func:`normalize_inputs`):
uint8 RGB is divided by 255, then each channel ``c`` becomes
``(x - mean[c]) / std[c]`` with the ImageNet mean and std.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magnipath import __version__
from magnipath._errors import MagnipathError, ModelError
from magnipath._io import atomic_path, atomic_write_text
from magnipath.classes import ClassMap
from magnipath.geometry import TileGeometry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

CHECKPOINT_FORMAT = "magnipath-checkpoint"
CARD_FORMAT = "magnipath-model-card"
FORMAT_VERSION = 1

DEFAULT_NORMALISATION: dict[str, Any] = {
    "scale": 1.0 / 255.0,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "description": "uint8 RGB / 255, then (x - mean) / std per channel (ImageNet statistics); "
                   "inputs are a list of float32 (B, 3, S, S) tensors, one per geometry input",
}


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on (torch, numpy, magnipath, python)."""
    import numpy
    import torch

    out = {"magnipath": __version__, "torch": str(torch.__version__),
           "numpy": str(numpy.__version__), "python": sys.version.split()[0]}
    smp = sys.modules.get("segmentation_models_pytorch")
    if smp is not None:
        out["segmentation_models_pytorch"] = str(getattr(smp, "__version__", "?"))
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _close(a: float, b: float, rel: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-9)


@dataclass
class ModelCard:
    """Everything needed to run a trained model as it was trained.

    Attributes
    ----------
    arch : str
        Registry name of the architecture (``magnipath.models.list_models()``).
    arch_kwargs : dict
        Keyword arguments that rebuild it with ``build_model(arch, **arch_kwargs)``
        (``n_classes``, ``n_inputs``, ``in_channels`` and e.g. ``base`` width).
    class_map : dict
        ``ClassMap.to_dict()``: QuPath class names, label indices, colours, ignore index.
    geometry : dict
        ``TileGeometry.to_dict()`` of the training dataset: target size (px), target
        µm/px and the µm/px and size of every concentric input, target first.
    normalisation : dict
        How uint8 inputs become model inputs (see :data:`DEFAULT_NORMALISATION`).
    train_config : dict
        The training configuration (``TrainConfig.to_dict()``).
    seed : int or None
        Random seed of the training run.
    metrics : dict
        ``{"best": {...}, "last": {...}}``: epoch, selection score, losses, per-class
        and mean IoU on the validation split.
    dataset : dict
        ``dataset_id``, path, and the slide ids of every split.
    versions : dict
        Library versions at training time.
    created : str
        UTC time the card was written, ISO 8601.
    training_data : dict
        Where the training pixels came from (:func:`training_data_from_slides`):
        ``synthetic_only`` (True / False / None: unknown), ``n_slides``,
        ``n_synthetic``, ``slides`` (``slide_id`` -> ``"synthetic"``, ``"real"``
        or ``"unknown"``), and any further keys a training step records (e.g. its
        stain augmentation). Empty for cards written before it existed.
    """

    arch: str
    arch_kwargs: dict
    class_map: dict
    geometry: dict
    normalisation: dict = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    train_config: dict = field(default_factory=dict)
    seed: int | None = None
    metrics: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    versions: dict = field(default_factory=library_versions)
    created: str = field(default_factory=_now)
    training_data: dict = field(default_factory=dict)

    # -- derived views ----------------------------------------------------------------
    @property
    def classes(self) -> ClassMap:
        """The class map as a :class:`~magnipath.classes.ClassMap`."""
        return ClassMap.from_dict(self.class_map)

    @property
    def ignore_index(self) -> int:
        """Label value of unlabelled pixels."""
        return int(self.class_map.get("ignore_index", 255))

    @property
    def n_classes(self) -> int:
        """Number of output channels of the model."""
        return self.classes.n_classes

    @property
    def input_geometry(self) -> TileGeometry:
        """The input geometry as a :class:`~magnipath.geometry.TileGeometry`."""
        return TileGeometry.from_dict(self.geometry)

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict (also embedded in every checkpoint)."""
        return {"format": CARD_FORMAT, "version": FORMAT_VERSION, "arch": self.arch,
                "arch_kwargs": dict(self.arch_kwargs), "class_map": self.class_map,
                "ignore_index": self.ignore_index, "geometry": self.geometry,
                "normalisation": self.normalisation, "train_config": self.train_config,
                "seed": self.seed, "metrics": self.metrics, "dataset": self.dataset,
                "versions": self.versions, "created": self.created,
                "training_data": self.training_data}

    @classmethod
    def from_dict(cls, d: dict, source: str | Path = "model card") -> ModelCard:
        """Inverse of :meth:`to_dict`; ``source`` names the file in error messages."""
        if not isinstance(d, dict):
            raise ModelError(f"{source}: the model card is not a JSON object")
        missing = [k for k in ("arch", "arch_kwargs", "class_map", "geometry") if k not in d]
        if missing:
            raise ModelError(f"{source}: the model card lacks {missing}; the file is not a "
                             "MagniPath model card or is damaged; retrain or re-export it")
        try:
            card = cls(arch=str(d["arch"]), arch_kwargs=dict(d["arch_kwargs"]),
                       class_map=dict(d["class_map"]), geometry=dict(d["geometry"]),
                       normalisation=dict(d.get("normalisation") or DEFAULT_NORMALISATION),
                       train_config=dict(d.get("train_config") or {}), seed=d.get("seed"),
                       metrics=dict(d.get("metrics") or {}), dataset=dict(d.get("dataset") or {}),
                       versions=dict(d.get("versions") or {}), created=str(d.get("created", "")),
                       training_data=dict(d.get("training_data") or {}))
            card.classes  # noqa: B018 - validates the class map
            card.input_geometry  # noqa: B018 - validates the geometry
        except MagnipathError as e:
            raise ModelError(f"{source}: {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{source}: malformed model card ({e!r})") from e
        return card

    def save_json(self, path: str | Path) -> Path:
        """Write the card as JSON atomically; return the path."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> ModelCard:
        """Read a ``model_card.json``; :class:`ModelError` naming the file when it is bad."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise ModelError(f"model card {path} not found") from e
        except (OSError, ValueError) as e:
            raise ModelError(f"model card {path} cannot be read ({e}); it is damaged") from e
        return cls.from_dict(data, source=path)

    # -- checks -------------------------------------------------------------------------
    def check_input(self, geometry: TileGeometry, slide_mpp: float | None = None, *,
                    rel_tol: float = 1e-3, mpp_tol: float = 0.1) -> None:
        """Refuse inputs that differ from the geometry the model was trained on.

        Parameters
        ----------
        geometry : TileGeometry
            Geometry of the inputs about to be fed (target size in px, µm/px of each
            input, target first).
        slide_mpp : float, optional
            Level-0 resolution of the slide, µm/px. The slide must be at least as
            fine as the model's finest input (up to ``mpp_tol``), since inputs are
            never made by upsampling.
        rel_tol : float
            Relative tolerance on µm/px of each input.
        mpp_tol : float
            Relative tolerance on the slide resolution.

        Raises
        ------
        ModelError
            Naming what differs and what the model expects.
        """
        want = self.input_geometry
        got = geometry

        def desc(g: TileGeometry) -> str:
            return (f"target {g.target_size} px at {g.target_mpp:g} µm/px, inputs "
                    + ", ".join(f"{i.size} px at {i.mpp:g} µm/px" for i in g.inputs))

        same = (want.target_size == got.target_size
                and _close(want.target_mpp, got.target_mpp, rel_tol)
                and want.n_inputs == got.n_inputs
                and all(a.size == b.size and _close(a.mpp, b.mpp, rel_tol)
                        for a, b in zip(want.inputs, got.inputs, strict=True)))
        if not same:
            raise ModelError(f"the model ({self.arch}) was trained on {desc(want)} but the "
                             f"inputs are {desc(got)}; use the model's geometry")
        if slide_mpp is not None:
            finest = min(i.mpp for i in want.inputs)
            if float(slide_mpp) > finest * (1 + mpp_tol):
                raise ModelError(
                    f"the slide's level-0 resolution {float(slide_mpp):g} µm/px "
                    f"({10 / float(slide_mpp):.3g}x) is coarser than the model's finest input "
                    f"{finest:g} µm/px ({10 / finest:.3g}x); the model cannot be applied "
                    "without upsampling; use a slide scanned at a higher magnification")


# -- normalisation ----------------------------------------------------------------------
def normalize_inputs(images: torch.Tensor | np.ndarray,
                     normalisation: dict | None = None, *,
                     channels_last: bool = False) -> list[torch.Tensor]:
    """Turn a uint8 batch into the list of model inputs.

    Parameters
    ----------
    images : Tensor or ndarray
        uint8 RGB, ``(B, n_inputs, S, S, 3)`` (axes batch, input, y, x, channel)
        or ``(n_inputs, S, S, 3)`` for one sample.
    normalisation : dict, optional
        ``card.normalisation``; :data:`DEFAULT_NORMALISATION` when None.
    channels_last : bool
        Return the tensors in channels-last memory format (same shape and
        values; the layout fast convolutions want on CPUs with bfloat16 and on
        GPUs under mixed precision).

    Returns
    -------
    list of Tensor
        ``n_inputs`` float32 tensors ``(B, 3, S, S)`` on the device of ``images``.
    """
    import torch

    norm = normalisation or DEFAULT_NORMALISATION
    x = torch.as_tensor(images)
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ModelError(f"images must be (B, n_inputs, S, S, 3) uint8, got {tuple(x.shape)}")
    x = x.permute(0, 1, 4, 2, 3).float() * float(norm.get("scale", 1 / 255))
    mean = torch.tensor(norm["mean"], dtype=torch.float32, device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=torch.float32, device=x.device).view(1, 1, 3, 1, 1)
    x = (x - mean) / std
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return [x[:, k].contiguous(memory_format=fmt) for k in range(x.shape[1])]


# -- checkpoints ------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: torch.nn.Module, card: ModelCard, *,
                    optimizer_state: dict | None = None, scheduler_state: dict | None = None,
                    scaler_state: dict | None = None, train_state: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Parameters
    ----------
    path : path
        Target ``.pt`` file.
    model : torch.nn.Module
        Its ``state_dict()`` is saved (moved to the CPU).
    card : ModelCard
        Embedded as a plain dict.
    optimizer_state, scheduler_state, scaler_state, train_state : dict, optional
        What a resumed run needs (``last.pt``); omitted in ``best.pt``.

    Returns
    -------
    Path
    """
    import torch

    weights = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    card_dict = json.loads(json.dumps(card.to_dict()))  # plain JSON types only
    payload = {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "card": card_dict,
               "model_state": weights, "optimizer_state": optimizer_state,
               "scheduler_state": scheduler_state, "scaler_state": scaler_state,
               "train_state": train_state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """Read a checkpoint file written by :func:`save_checkpoint` (safe ``weights_only`` load).

    Raises
    ------
    ModelError
        If the file is missing, corrupt or not a MagniPath checkpoint (names the file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found; train a model first or give the "
                         "folder written by 'magnipath train --out'")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for damaged files
        raise ModelError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                         f"{str(e)[:200]}); the file is damaged or not a checkpoint") from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a MagniPath checkpoint (no '{CHECKPOINT_FORMAT}' "
                         "marker)")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise ModelError(f"checkpoint {path} has format version {data.get('version')}; this "
                         f"MagniPath ({__version__}) reads up to {FORMAT_VERSION}; upgrade it")
    if not isinstance(data.get("model_state"), dict) or "card" not in data:
        raise ModelError(f"checkpoint {path} lacks weights or a model card; it is damaged")
    return data


def update_card(path: str | Path, card: ModelCard) -> Path:
    """Replace the card stored in checkpoint ``path`` (atomically), keeping its weights."""
    import torch

    data = load_checkpoint(path)
    data["card"] = json.loads(json.dumps(card.to_dict()))
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def build_from_card(card: ModelCard, source: str | Path = "model card") -> torch.nn.Module:
    """Build the (untrained) architecture described by ``card``."""
    from magnipath.models import build_model

    kwargs = {"n_classes": card.n_classes, "in_channels": 3,
              "n_inputs": card.input_geometry.n_inputs}
    kwargs.update(card.arch_kwargs)
    try:
        return build_model(card.arch, **kwargs)
    except MagnipathError as e:
        raise ModelError(f"{source}: cannot rebuild architecture {card.arch!r}: {e}") from e
    except TypeError as e:
        raise ModelError(f"{source}: architecture {card.arch!r} does not accept the stored "
                         f"arguments {card.arch_kwargs} ({e})") from e


def resolve_checkpoint(path: str | Path, which: str = "best") -> Path:
    """The ``.pt`` file for ``path``: itself, or ``<dir>/<which>.pt`` (``last.pt`` fallback)."""
    path = Path(path)
    if path.is_dir():
        for name in (f"{which}.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ModelError(f"model folder {path} holds no {which}.pt or last.pt; give the folder "
                         "written by 'magnipath train --out' or a .pt file")
    if not path.exists():
        raise ModelError(f"model {path} not found; give a model folder or a .pt checkpoint")
    return path


def load_model(model: str | Path, device: str | torch.device = "cpu", *,
               which: str = "best") -> tuple[torch.nn.Module, ModelCard]:
    """Load a ready-to-run model (eval mode) and its card.

    Parameters
    ----------
    model : path
        A model folder (``best.pt`` by default, else ``last.pt``) or a ``.pt`` file.
    device : str or torch.device
        Where to put the model (``"cpu"``, ``"cuda"``, ``"auto"``...).
    which : str
        ``"best"`` or ``"last"`` when ``model`` is a folder.

    Returns
    -------
    (torch.nn.Module, ModelCard)

    Raises
    ------
    ModelError
        Missing or damaged files, a ``model_card.json`` that contradicts the
        checkpoint, or weights that do not fit the architecture (names the file).
    """
    from magnipath.device import resolve_device

    pt = resolve_checkpoint(model, which)
    data = load_checkpoint(pt)
    card = ModelCard.from_dict(data["card"], source=pt)
    side = pt.parent / "model_card.json"
    if side.is_file():
        other = ModelCard.load_json(side)
        for key in ("arch", "arch_kwargs", "class_map", "geometry", "normalisation"):
            if getattr(other, key) != getattr(card, key):
                raise ModelError(f"{side} and {pt} disagree on '{key}'; the folder mixes files "
                                 "of different models; retrain or remove the stray file")
    net = build_from_card(card, source=pt)
    try:
        net.load_state_dict(data["model_state"], strict=True)
    except RuntimeError as e:
        raise ModelError(f"checkpoint {pt}: the weights do not fit architecture {card.arch!r} "
                         f"{card.arch_kwargs} ({str(e)[:300]})") from e
    net.eval()
    return net.to(resolve_device(str(device))), card


SYNTH_MARK = "MagniPath synthetic"
"""Start of the level-0 ImageDescription that ``magnipath synth`` writes into every slide."""


def is_synth_slide(path: str | Path) -> bool | None:
    """Whether ``path`` is a slide written by ``magnipath synth`` (its TIFF description says so).

    Returns
    -------
    bool or None
        True for a synth slide, False for any other readable file, None when the
        file is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            desc = tif.pages[0].description or ""  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - any unreadable or non-TIFF file is not a synth slide
        return False
    return desc.lstrip().startswith(SYNTH_MARK)


def training_data_from_slides(slides: dict[str, str | Path], **extra: object) -> dict:
    """The card's ``training_data`` for slides ``{slide_id: path}`` (plus ``extra`` keys).

    A slide counts as synthetic when :func:`is_synth_slide` says so; a slide
    whose file cannot be found is ``"unknown"``, which makes ``synthetic_only``
    None unless a real slide is known (then False).
    """
    kinds = {}
    for sid, p in slides.items():
        v = is_synth_slide(p)
        kinds[str(sid)] = "unknown" if v is None else "synthetic" if v else "real"
    values = set(kinds.values())
    only = (False if "real" in values else None if "unknown" in values or not values
            else True)
    out = {"synthetic_only": only, "n_slides": len(kinds),
           "n_synthetic": sum(v == "synthetic" for v in kinds.values()), "slides": kinds}
    out.update(extra)
    return out


def provenance_note(card: ModelCard, slide: str | Path) -> str | None:
    """One line for the user when a synthetic-only model meets a slide not made by synth.

    Returns None when the model saw real slides, when its training data are not
    recorded, or when the slide is itself a ``magnipath synth`` slide.
    """
    if (card.training_data or {}).get("synthetic_only") is not True:
        return None
    if is_synth_slide(slide):
        return None
    return (f"note: this model was trained on synthetic slides only ('magnipath synth') and "
            f"{Path(slide).name} is not one; stain, scanner and tissue differences can make "
            "its predictions wrong here: check them before use")


def card_of(model: str | Path, which: str = "best") -> ModelCard:
    """The card of a model folder or ``.pt`` file, without building the model.

    Reads ``model_card.json`` beside the checkpoint when there is one, else the
    card embedded in the checkpoint.
    """
    pt = resolve_checkpoint(model, which)
    side = pt.parent / "model_card.json"
    if side.is_file():
        return ModelCard.load_json(side)
    return ModelCard.from_dict(load_checkpoint(pt)["card"], source=pt)
