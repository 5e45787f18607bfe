"""Training configuration and the papers' presets.

``TrainConfig.preset("dmmn")`` reproduces Ho et al. (Deep Multi-Magnification
Networks): SGD, lr 5e-5, momentum 0.99, weight decay 1e-4, 20 epochs, weighted
cross-entropy, elastic class balancing with rates carcinoma 2, benign epithelial
10, background 1, stroma 0, necrosis 3, adipose 0 and class order benign >
carcinoma > necrosis > background, best checkpoint by validation mIoU.
``TrainConfig.preset("tls")`` reproduces McCombe et al. (TLS segmentation):
UNet++/EfficientNet-B0, Adam lr 1e-3, batch 8, 5 epochs, Dice loss, best
checkpoint by the IoU of class "TLS". ``TrainConfig.preset("demo")`` is the
quick CPU setting of ``magnipath demo``: a small DMMN-M3 (base 8, depth 3, batch
norm), Adam with a warm-up + cosine learning-rate schedule, class-balanced
sampling, cross-entropy weighted by ``1 / sqrt`` of the class pixel counts + Dice,
mild HED stain jitter (:data:`DEMO_STAIN_AUGMENT`), 30 epochs of batch 16, mixed
precision where native.
Any field given next to a preset wins.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from magnipath._errors import ModelError
from magnipath.classes import ClassMap
from magnipath.train._stain_aug import (
    DEFAULT_STAIN_AUGMENT,
    DEMO_STAIN_AUGMENT,
    check_stain_augment,
)

LOSSES = ("wce", "ce", "dice", "wce+dice", "iwce", "iwce+dice")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
SAMPLINGS = ("uniform", "balanced")

DEFAULT_JITTER: dict[str, float] = {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1,
                                    "hue": 0.03}
"""Colour jitter ranges: factors drawn in ``1 ± value``; hue shift in ``± value`` turns."""

DMMN_RATES: dict[str, int] = {"Carcinoma": 2, "Benign": 10, "Background": 1, "Stroma": 0,
                              "Necrosis": 3, "Adipose": 0}
DMMN_ORDER: tuple[str, ...] = ("Benign", "Carcinoma", "Necrosis", "Background")

# Names a dataset may use for the DMMN classes (matched case-insensitively).
_ALIASES: dict[str, tuple[str, ...]] = {
    "carcinoma": ("carcinoma", "tumor", "tumour", "invasive carcinoma"),
    "benign": ("benign", "benign epithelial", "benign epithelium", "benign_epithelial"),
    "background": ("background",),
    "stroma": ("stroma",),
    "necrosis": ("necrosis", "necrotic"),
    "adipose": ("adipose", "fat"),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the model card).

    Attributes
    ----------
    arch : str
        Architecture name (``magnipath.models.list_models()``).
    arch_kwargs : dict
        Extra architecture arguments, e.g. ``{"base": 32}`` (first-layer width).
    epochs : int
        Number of passes over the (balanced) training set.
    lr : float
        Learning rate.
    batch_size : int
        Samples per optimisation step.
    optimizer : {"sgd", "adam"}
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 weight decay.
    loss : {"wce", "ce", "dice", "wce+dice", "iwce", "iwce+dice"}
        Weighted cross-entropy uses ``w_c = 1 - N_c / sum N_c`` over the balanced
        training pixels; unlabelled pixels never count.
    balance : dict
        Elastic-deformation rate ``r_c`` (copies per patch) by class name.
    balance_order : list of str
        Class order for balancing, highest first; a patch belongs to its highest
        class present.
    balance_missing_ok : bool
        Silently skip ``balance``/``balance_order`` names the dataset lacks (presets);
        otherwise an unknown name is an error.
    elastic_grid : int
        Control points per side of the elastic deformation grid (17).
    elastic_sigma : float
        Standard deviation of the control-point displacements, px (4).
    augment : bool
        90° rotations, flips and colour jitter (brightness, contrast, saturation, hue).
    jitter : dict
        Colour jitter ranges (:data:`DEFAULT_JITTER`).
    stain_augment : dict
        Stain augmentation with ``augment`` (on by default, in every preset): HED
        jitter ``scale`` (ln of the concentration factor), ``shift`` (OD),
        ``vectors`` (ln of the stain-vector component factors) and Macenko
        re-staining probability ``macenko``
        (:data:`magnipath.train._stain_aug.DEFAULT_STAIN_AUGMENT`); ``{}`` = off.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16 with a scaler)
        and on CPUs with native bfloat16 (Intel AMX / AVX512-BF16: bf16 autocast).
    channels_last : bool or None
        Channels-last memory format; None = on CUDA only.
    seed : int
        Seeds model initialisation, sample order, balancing copies and augmentation.
    num_workers : int or None
        DataLoader worker processes; None = on the CPU 0 (fewer than 4 cores) or 2,
        on a GPU min(8, CPUs - 1).
    select : str
        ``"miou"`` or a class name: which validation score picks ``best.pt``.
    max_steps_per_epoch : int or None
        Cap on optimisation steps per epoch (a random subset each epoch).
    time_budget_s : float or None
        Wall-clock budget of this call, s; training stops after the batch that
        exceeds it, then validates and saves that (shortened) epoch.
    cache_mb : float
        Load the used tiles into memory when they take less than this, MiB.
    preset_name : str or None
        Name of the preset the configuration started from (for the record).
    schedule : {"constant", "cosine"}
        Learning rate over the run's optimisation steps (``epochs x`` steps per
        epoch): ``constant`` keeps ``lr``; ``cosine`` warms up linearly from
        ``lr / 25`` to ``lr`` over the first ``warmup`` share of the steps, then
        decays along a half cosine to ``lr * final_lr``. Set per step, so a
        resumed run follows the same curve.
    warmup : float
        Share of the steps spent warming up (0-1, ``cosine`` only).
    final_lr : float
        Last learning rate of ``cosine`` as a fraction of ``lr``.
    sampling : {"uniform", "balanced"}
        ``uniform``: each epoch is a permutation of the (elastically balanced)
        items. ``balanced``: each epoch draws as many items with replacement so
        that every class is equally likely to be present in a sample (a class
        is present in a tile when it holds at least ``min_class_fraction`` of
        its labelled pixels), so rare classes are seen from the first batches;
        the weighted cross-entropy then weighs classes by their expected pixel
        counts under this sampling.
    min_class_fraction : float
        Presence threshold of ``balanced`` sampling, fraction of a tile's labelled pixels.
    """

    arch: str = "dmmn-m3"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 8
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "wce"
    balance: dict[str, int] = field(default_factory=dict)
    balance_order: list[str] = field(default_factory=list)
    balance_missing_ok: bool = False
    elastic_grid: int = 17
    elastic_sigma: float = 4.0
    augment: bool = True
    jitter: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_JITTER))
    stain_augment: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STAIN_AUGMENT))
    device: str = "auto"
    amp: bool = False
    channels_last: bool | None = None
    seed: int = 0
    num_workers: int | None = None
    select: str = "miou"
    max_steps_per_epoch: int | None = None
    time_budget_s: float | None = None
    cache_mb: float = 2048.0
    preset_name: str | None = None
    schedule: str = "constant"
    warmup: float = 0.0
    final_lr: float = 0.01
    sampling: str = "uniform"
    min_class_fraction: float = 0.01

    # -- presets --------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The configuration of a paper (``"dmmn"`` or ``"tls"``), with ``overrides``.

        Parameters
        ----------
        name : {"dmmn", "tls", "demo"}
        **overrides
            Any :class:`TrainConfig` field; wins over the preset.
        """
        key = name.strip().lower()
        if key == "dmmn":
            base: dict[str, Any] = dict(
                arch="dmmn-m3", optimizer="sgd", lr=5e-5, momentum=0.99, weight_decay=1e-4,
                epochs=20, loss="wce", balance=dict(DMMN_RATES), balance_order=list(DMMN_ORDER),
                balance_missing_ok=True, select="miou", batch_size=8)
        elif key == "demo":
            base = dict(arch="dmmn-m3", arch_kwargs={"base": 8, "depth": 3, "norm": True},
                        optimizer="adam", lr=2e-3, momentum=0.9, weight_decay=0.0, epochs=30,
                        batch_size=16, loss="iwce+dice", schedule="cosine", warmup=0.1,
                        sampling="balanced", select="miou", amp=True,
                        stain_augment=dict(DEMO_STAIN_AUGMENT))
        elif key == "tls":
            base = dict(arch="unetpp-effb0", optimizer="adam", lr=1e-3, momentum=0.9,
                        weight_decay=0.0, epochs=5, batch_size=8, loss="dice", select="TLS")
        else:
            raise ModelError(f"unknown training preset {name!r}; choose 'dmmn', 'tls' or "
                             "'demo'")
        base["preset_name"] = key
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**base)
        cfg.validate()
        return cfg

    # -- checks and (de)serialisation --------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ModelError` naming the first field with an impossible value."""
        def bad(name: str, why: str) -> ModelError:
            return ModelError(f"training setting '{name}' = {getattr(self, name)!r}: {why}")

        if int(self.epochs) < 1:
            raise bad("epochs", "must be at least 1")
        if not float(self.lr) > 0:
            raise bad("lr", "must be a positive learning rate")
        if int(self.batch_size) < 1:
            raise bad("batch_size", "must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"choose one of {OPTIMIZERS}")
        if self.loss not in LOSSES:
            raise bad("loss", f"choose one of {LOSSES}")
        if float(self.weight_decay) < 0 or float(self.momentum) < 0:
            raise bad("weight_decay" if float(self.weight_decay) < 0 else "momentum",
                      "must not be negative")
        for k, v in self.balance.items():
            if int(v) != v or int(v) < 0:
                raise ModelError(f"balancing rate for class {k!r} = {v!r}: rates are "
                                 "non-negative integers (copies per patch)")
        if self.num_workers is not None and int(self.num_workers) < 0:
            raise bad("num_workers", "must be 0 or more")
        if self.max_steps_per_epoch is not None and int(self.max_steps_per_epoch) < 1:
            raise bad("max_steps_per_epoch", "must be at least 1 (or unset)")
        if self.time_budget_s is not None and not float(self.time_budget_s) > 0:
            raise bad("time_budget_s", "must be a positive number of seconds (or unset)")
        why = check_stain_augment(dict(self.stain_augment or {}))
        if why:
            raise bad("stain_augment", why)
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"choose one of {SCHEDULES}")
        if not 0.0 <= float(self.warmup) < 1.0:
            raise bad("warmup", "a share of the steps: 0 or more, below 1")
        if not 0.0 <= float(self.final_lr) <= 1.0:
            raise bad("final_lr", "a fraction of lr between 0 and 1")
        if self.sampling not in SAMPLINGS:
            raise bad("sampling", f"choose one of {SAMPLINGS}")
        if not 0.0 <= float(self.min_class_fraction) < 1.0:
            raise bad("min_class_fraction", "a fraction between 0 and 1")
        if int(self.elastic_grid) < 2 or float(self.elastic_sigma) < 0:
            raise bad("elastic_grid" if int(self.elastic_grid) < 2 else "elastic_sigma",
                      "grid needs at least 2 points per side and sigma >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ModelError(f"unknown training settings {unknown}; known: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# -- balancing names -> indices -----------------------------------------------------------
def parse_rates(text: str, field: str = "--balance") -> dict[str, int]:
    """Balancing rates ``"Carcinoma=2, Benign=10"`` -> ``{"Carcinoma": 2, "Benign": 10}``.

    Entries are separated by commas (or semicolons); a rate is a whole number of
    elastic copies per tile (:attr:`TrainConfig.balance`).

    Parameters
    ----------
    text : str
        The user's text.
    field : str
        How the user's interface names the field, for the error message.

    Raises
    ------
    ModelError
        An entry that is not ``CLASS=integer``.
    """
    rates: dict[str, int] = {}
    for part in (s.strip() for s in text.replace(";", ",").split(",") if s.strip()):
        name, sep, value = part.rpartition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            rates[name.strip()] = int(value)
        except ValueError:
            raise ModelError(f"{field}: entry {part!r} is not CLASS=RATE with a whole-number "
                             "rate; write e.g. 'Carcinoma=2, Benign=10'") from None
    return rates


def _canon(name: str) -> str:
    low = name.strip().lower().replace("_", " ")
    for canon, names in _ALIASES.items():
        if low in names:
            return canon
    return low


def _match(name: str, class_map: ClassMap) -> int | None:
    """Index of the class called ``name`` (case-insensitive, DMMN aliases), or None."""
    for c in class_map.classes:
        if c.name == name:
            return c.index
    want = _canon(name)
    hits = [c.index for c in class_map.classes if _canon(c.name) == want]
    return hits[0] if len(hits) == 1 else None


def resolve_balance(config: TrainConfig, class_map: ClassMap) -> tuple[list[int], list[int]]:
    """Balancing rates per class index and the class order as indices (highest first).

    Names match class names exactly, else case-insensitively (with the DMMN aliases
    benign = benign epithelial, necrosis = necrotic, carcinoma = tumour...).

    Returns
    -------
    rates : list of int
        ``rates[c]`` copies per patch of class ``c`` (length ``class_map.n_classes``).
    order : list of int
        Class indices, highest order first.

    Raises
    ------
    ModelError
        A name matches no class and ``config.balance_missing_ok`` is False.
    """
    rates = [0] * class_map.n_classes
    order: list[int] = []
    unknown = []
    for name, r in config.balance.items():
        idx = _match(name, class_map)
        if idx is None:
            unknown.append(name)
        else:
            rates[idx] = int(r)
    for name in config.balance_order:
        idx = _match(name, class_map)
        if idx is None:
            unknown.append(name)
        elif idx not in order:
            order.append(idx)
    if unknown and not config.balance_missing_ok:
        raise ModelError(f"balancing names {sorted(set(unknown))} are not classes of the "
                         f"dataset {class_map.names}; fix --balance / --balance-order")
    return rates, order
