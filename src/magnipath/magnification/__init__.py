"""Magnification estimation for images without metadata (Otálora et al., METHODS.md 000).

Figures, screenshots and slides exported without metadata have no known
magnification; this package estimates it from the pixels:

- :func:`make_dataset` cuts 224 px patches at 5, 8, 10, 15, 20, 30 and 40x
  from 40x slides by downsampling (split by slide), with two targets: the
  magnification and the mean nucleus area in pixels;
- :func:`train` fits a *direct* regressor (magnification) and an *area*
  regressor (mean nucleus area; mapped to the class whose training mean area is
  closest), DenseNet-121 from scratch or ShallowNet;
- the fusion ``alpha * area + (1 - alpha) * direct`` (alpha = 0.2) is mapped to
  the closest class, and the continuous value is kept;
- :func:`physical_estimate` (the default of :func:`estimate` and
  :func:`suggest_mpp`): no training; the LoG size of the darkest round nuclei
  (small lymphocytes, 5-8 µm) on the haematoxylin channel gives µm/px with an
  interval, or "cannot estimate" (:class:`CannotEstimate`);
- the non-learning baseline (Otsu nuclei on the haematoxylin channel, mean
  area of blobs not touching the border and larger than 20 px, calibration
  table) is kept as ``method="baseline"``;
- :func:`evaluate` gives Cohen's kappa, F1 and confusion matrices;
- :func:`estimate` answers for any PNG/JPEG/TIFF or array, :func:`suggest_mpp`
  for a slide without mpp, through one code path (:func:`estimate_regions`);
  with a model the CNN fusion is combined with the physical estimate only where
  they agree. Their answers are estimates and say so.

Magnification is ``10 / mpp`` (40x = 0.25 µm/px).

Examples
--------
>>> import numpy as np
>>> from magnipath.magnification import estimate
>>> rgb = np.full((300, 400, 3), 230, np.uint8)               # doctest: +SKIP
>>> estimate(rgb)["is_estimate"]                              # doctest: +SKIP
True
"""

from magnipath.magnification._baseline import DEFAULT_TABLE, baseline_areas, calibrate_baseline
from magnipath.magnification._core import (
    ALPHA,
    MAGNIFICATIONS,
    PATCH,
    AreaTable,
    MagnificationError,
    closest_magnification,
    fuse,
    source_size,
)
from magnipath.magnification._data import (
    MagDataConfig,
    MagDataset,
    MagSource,
    make_dataset,
    open_dataset,
    patch_at,
    synthetic_sources,
)
from magnipath.magnification._evaluate import class_metrics, evaluate
from magnipath.magnification._nuclei import (
    baseline_area,
    complete_blob_areas,
    haematoxylin,
    nucleus_mask,
)
from magnipath.magnification._physical import (
    LYMPHOCYTE_LOG_DIAMETER_UM,
    CannotEstimate,
    PhysicalEstimate,
    nucleus_blobs,
    physical_estimate,
)
from magnipath.magnification._predict import (
    MagnificationModel,
    estimate,
    image_patches,
    load_model,
    predict_patches,
    read_image,
    summarise,
)
from magnipath.magnification._regions import estimate_regions
from magnipath.magnification._suggest import (
    ESTIMATED,
    MppEstimate,
    estimate_source,
    file_mpp,
    mpp_option,
    resolve_slide_mpp,
    suggest_mpp,
)
from magnipath.magnification._train import MagTrainConfig, fit_regressor, train

__all__ = [
    "ALPHA",
    "DEFAULT_TABLE",
    "ESTIMATED",
    "LYMPHOCYTE_LOG_DIAMETER_UM",
    "MAGNIFICATIONS",
    "PATCH",
    "AreaTable",
    "CannotEstimate",
    "MagDataConfig",
    "MagDataset",
    "MagSource",
    "MagTrainConfig",
    "MagnificationError",
    "MagnificationModel",
    "MppEstimate",
    "PhysicalEstimate",
    "baseline_area",
    "baseline_areas",
    "calibrate_baseline",
    "class_metrics",
    "closest_magnification",
    "complete_blob_areas",
    "estimate",
    "estimate_regions",
    "estimate_source",
    "evaluate",
    "file_mpp",
    "fit_regressor",
    "fuse",
    "haematoxylin",
    "image_patches",
    "load_model",
    "make_dataset",
    "mpp_option",
    "nucleus_blobs",
    "nucleus_mask",
    "open_dataset",
    "patch_at",
    "physical_estimate",
    "predict_patches",
    "read_image",
    "resolve_slide_mpp",
    "source_size",
    "suggest_mpp",
    "summarise",
    "synthetic_sources",
    "train",
]
