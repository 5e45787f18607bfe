"""Fixtures of the tiling tests (the synthetic slides come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from magnipath.synth import SYNTH_CLASSES
from qupath_bridge.geojson import read_geojson


@pytest.fixture(scope="session")
def truth_shapes(synth_small):
    """Ground-truth polygons of ``synth_small`` as ``(geometry, class index)`` (a partition)."""
    return [(o.geometry, SYNTH_CLASSES.index_of(o.classification))
            for o in read_geojson(synth_small.truth)]
