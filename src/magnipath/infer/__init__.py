"""Whole-slide inference with a trained model (``magnipath infer``).

:func:`infer_slide` runs a model over a slide (or a level-0 region) exactly at
the model card's input geometry and writes the label map, chunk by chunk, into
a resumable zarr store (:func:`open_prediction`); :func:`prediction_objects`
turns chosen classes of a finished store into QuPath objects.

>>> from magnipath.infer import InferConfig, infer_slide  # doctest: +SKIP
>>> result = infer_slide("slide.tif", "model_dir", "predictions/")  # doctest: +SKIP
>>> result.store  # predictions/slide.zarr: labels/0 at the model's target mpp  # doctest: +SKIP
"""

from magnipath.infer._api import FieldOfViewWarning, infer_slide
from magnipath.infer._config import InferConfig, InferError, InferResult
from magnipath.infer._engine import run_windows
from magnipath.infer._objects import prediction_objects
from magnipath.infer._reader import WindowReader
from magnipath.infer._store import (
    PredictionStore,
    PredictionStoreError,
    open_prediction,
    store_path,
)
from magnipath.infer._windows import WindowPlan, blend_weights, plan_windows

__all__ = ["FieldOfViewWarning", "InferConfig", "InferError", "InferResult", "PredictionStore",
           "PredictionStoreError",
           "WindowPlan", "WindowReader", "blend_weights", "infer_slide", "open_prediction",
           "plan_windows", "prediction_objects", "run_windows", "store_path"]
