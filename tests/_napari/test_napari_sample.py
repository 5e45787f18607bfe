"""Sample data: the synthetic slide with its ground truth, made once and cached."""

from __future__ import annotations

import npe2
import numpy as np
import pytest
from napari.layers import Image, Points, Shapes

from magnipath._napari._sample_data import SAMPLE_MPP, SAMPLE_WIDTH, sample_paths
from magnipath.synth import SYNTH_CLASSES
from qupath_bridge.geojson import read_geojson


def _n_points(path):
    return sum(len(getattr(o.geometry, "geoms", [o.geometry])) for o in read_geojson(path))


def test_sample_command_gives_slide_and_truth(monkeypatch, tmp_path):
    """The manifest's sample command: layer data of the slide, truth, mitoses, partial."""
    monkeypatch.setenv("MAGNIPATH_CACHE_DIR", str(tmp_path / "cache"))
    pm = npe2.PluginManager.instance()
    pm.discover()
    (contrib,) = next(s for s in pm.iter_sample_data() if s[0] == "napari-magnipath")[1]
    assert contrib.display_name == "MagniPath synthetic slide"
    layer_data = pm.get_command(contrib.command).exec()
    assert [k for _, _, k in layer_data] == ["image", "shapes", "points", "shapes"]
    (levels, image_kw, _), (_, truth_kw, _), (points, points_kw, _), (_, part_kw, _) = \
        layer_data
    assert image_kw["multiscale"] and levels[0].shape == (SAMPLE_WIDTH, SAMPLE_WIDTH, 3)
    assert not isinstance(levels[0], np.ndarray)
    for kw in (image_kw, truth_kw, points_kw, part_kw):
        assert kw["scale"] == (SAMPLE_MPP, SAMPLE_MPP)
    classes = set(truth_kw["features"]["classification"])
    assert classes <= set(SYNTH_CLASSES.names) and len(classes) >= 3
    assert part_kw["visible"] is False
    paths = sample_paths()
    assert paths["slide"].is_relative_to(tmp_path / "cache" / "sample")
    assert len(points) == _n_points(paths["mitoses"])
    # a second call reuses the cached files
    before = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    again = sample_paths()
    assert again == paths
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == before


@pytest.mark.slow  # ~6 s idle, 15 s on a loaded 2-core machine: napari triangulates in Python
def test_sample_opens_in_the_viewer(make_napari_viewer, monkeypatch, tmp_path):
    monkeypatch.setenv("MAGNIPATH_CACHE_DIR", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-magnipath", "synthetic_slide")
    assert [type(la) for la in layers] == [Image, Shapes, Points, Shapes]
    image, truth, mitoses, partial = layers
    assert image.multiscale
    for layer in layers:
        np.testing.assert_allclose(layer.scale, [SAMPLE_MPP, SAMPLE_MPP])
    assert not partial.visible
    assert len(mitoses.data) == _n_points(sample_paths()["mitoses"])
    assert set(truth.features["classification"]) <= set(SYNTH_CLASSES.names)
