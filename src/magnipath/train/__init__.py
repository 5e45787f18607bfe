"""Training of segmentation models on tile datasets (``magnipath train``).

Pieces: :class:`TrainConfig` and the papers' presets; elastic class balancing
(:func:`plan_balance`, :func:`elastic_deform`); augmentation
(:func:`augment_sample`); the loop (:func:`train`) with validation, checkpoints,
resume and history; plots of the training curve and the class balance.

Examples
--------
>>> from magnipath.train import TrainConfig, train
>>> cfg = TrainConfig.preset("dmmn", epochs=2, arch_kwargs={"base": 8})  # doctest: +SKIP
>>> summary = train("dataset/", "model/", cfg)  # doctest: +SKIP
"""

from magnipath.train._config import (
    DEFAULT_JITTER,
    DMMN_ORDER,
    DMMN_RATES,
    LOSSES,
    OPTIMIZERS,
    TrainConfig,
    parse_rates,
    resolve_balance,
)
from magnipath.train._data import EpochSampler, TileSamples, augment_sample, preload_tiles
from magnipath.train._elastic import (
    BalancePlan,
    elastic_deform,
    elastic_field,
    patch_classes,
    plan_balance,
)
from magnipath.train._loop import resume_config, train
from magnipath.train._plot import plot_balance, plot_curve

__all__ = [
    "DEFAULT_JITTER",
    "DMMN_ORDER",
    "DMMN_RATES",
    "LOSSES",
    "OPTIMIZERS",
    "BalancePlan",
    "EpochSampler",
    "TileSamples",
    "TrainConfig",
    "augment_sample",
    "elastic_deform",
    "elastic_field",
    "parse_rates",
    "patch_classes",
    "plan_balance",
    "plot_balance",
    "plot_curve",
    "preload_tiles",
    "resolve_balance",
    "resume_config",
    "train",
]
