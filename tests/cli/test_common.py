"""The CLI's summary printer: strict JSON, readable lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from magnipath.cli._common import emit_summary


def test_json_summary_is_strict_json_with_nan_as_null(capsys):
    summary = {"kappa": math.nan, "per_class": {"a": [1.0, float("nan")], "b": np.float64("nan")},
               "path": Path("x/y"), "counts": np.arange(3)}
    emit_summary(summary, as_json=True)
    text = capsys.readouterr().out
    out = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert out == {"kappa": None, "per_class": {"a": [1.0, None], "b": None}, "path": "x/y",
                   "counts": [0, 1, 2]}
    emit_summary({"kappa": math.nan, "n": 3}, as_json=False)
    assert capsys.readouterr().out.splitlines() == ["kappa: None", "n: 3"]
