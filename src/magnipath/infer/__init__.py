"""Whole-slide inference with a trained model (``magnipath infer``).

>>> from magnipath.infer import InferConfig, infer_slide  # doctest: +SKIP
>>> result = infer_slide("slide.tif", "model_dir", "predictions/")  # doctest: +SKIP
>>> result.store  # a zarr group: labels/0 at the model's target mpp  # doctest: +SKIP
"""

from magnipath.infer._api import infer_slide
from magnipath.infer._engine import InferConfig, InferResult
from magnipath.infer._objects import prediction_objects
from magnipath.infer._store import open_prediction
from magnipath.infer._windows import WindowPlan, blend_weights, plan_windows

__all__ = ["InferConfig", "InferResult", "WindowPlan", "blend_weights", "infer_slide",
           "open_prediction", "plan_windows", "prediction_objects"]
