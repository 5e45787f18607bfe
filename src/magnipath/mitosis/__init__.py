"""Mitosis detection in tiles (Pearce, METHODS.md 001).

- Labels: mitosis points (QuPath GeoJSON, a QuPath project's objects, or an
  array of level-0 ``(x, y)``) become probability maps ``pi = exp(-a d)``
  (:func:`magnipath.tiling.point_probability_map`); a tile (64 or 256 px) is
  positive when its map exceeds a threshold (:func:`make_tiles`).
- Stain: RGB, RGB + Macenko H + E (6 channels) or Macenko-normalised RGB
  (:mod:`magnipath.stain`).
- Model: the small CNN (two 3x3 conv + batch norm + ReLU per block, max pool,
  dense layer with dropout, one-logit classifier); losses BCE, hinge and rare
  hinge (positive loss x e^a).
- Imbalance: balanced sampling (~1/3 positive) and the negative feed
  (:func:`negative_feed`: after each epoch, the misclassified training tiles plus
  a random sample of correct ones, rotated and with Gaussian noise, are the
  next epoch's data).
- Output: :func:`detect` gives a per-tile heat map and QuPath detections with
  a ``Mitosis probability`` measurement; :func:`evaluate` scores accuracy,
  precision, recall and F1 against the points.

Coordinates are level-0 pixels; tile sizes are output pixels.
"""

from magnipath.mitosis._data import (
    MitosisError,
    MitosisSource,
    TileConfig,
    TileSet,
    grid_boxes,
    load_tiles,
    make_tiles,
    save_tiles,
    slide_vectors,
)
from magnipath.mitosis._detect import PROBABILITY, Detection, detect
from magnipath.mitosis._evaluate import evaluate
from magnipath.mitosis._labels import (
    MITOSIS_CLASS,
    load_points,
    positive_tiles,
    tile_probabilities,
)
from magnipath.mitosis._losses import LOSSES, bce_loss, hinge_loss, make_loss, rare_hinge_loss
from magnipath.mitosis._metrics import binary_metrics, point_hits
from magnipath.mitosis._model import (
    STAINS,
    MitosisModel,
    MitosisNet,
    build_model,
    load_model,
    new_card,
    prepare_inputs,
    save_model,
)
from magnipath.mitosis._train import (
    MitosisTrainConfig,
    balanced_indices,
    distort,
    negative_feed,
    recalibrate_batchnorm,
    train,
)

__all__ = [
    "LOSSES",
    "MITOSIS_CLASS",
    "PROBABILITY",
    "STAINS",
    "Detection",
    "MitosisError",
    "MitosisModel",
    "MitosisNet",
    "MitosisSource",
    "MitosisTrainConfig",
    "TileConfig",
    "TileSet",
    "balanced_indices",
    "bce_loss",
    "binary_metrics",
    "build_model",
    "detect",
    "distort",
    "evaluate",
    "grid_boxes",
    "hinge_loss",
    "load_model",
    "load_points",
    "load_tiles",
    "make_loss",
    "make_tiles",
    "negative_feed",
    "new_card",
    "point_hits",
    "positive_tiles",
    "prepare_inputs",
    "rare_hinge_loss",
    "recalibrate_batchnorm",
    "save_model",
    "save_tiles",
    "slide_vectors",
    "tile_probabilities",
    "train",
]
