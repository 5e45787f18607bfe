"""Ground-truth GeoJSON: exhaustive partition, DMMN-style partial subset, mitosis points."""

import json

import numpy as np
import pytest
import shapely

from magnipath.rasterize import rasterize
from magnipath.synth import SYNTH_CLASSES, SynthConfig, render_labels, synthesize
from magnipath.synth._layout import make_layout
from qupath_bridge.geojson import read_geojson


@pytest.fixture(scope="module")
def truth(synth_small):
    return read_geojson(synth_small.truth)


@pytest.fixture(scope="module")
def partial(synth_small):
    return read_geojson(synth_small.partial)


def test_files_sit_next_to_the_slide(synth_small):
    stem = synth_small.slide.with_suffix("")
    assert synth_small.truth == stem.with_suffix(".geojson")
    assert synth_small.partial.name == "small.partial.geojson"
    assert synth_small.mitoses.name == "small.mitoses.geojson"
    for p in (synth_small.truth, synth_small.partial, synth_small.mitoses):
        data = json.loads(p.read_text())
        assert data["type"] == "FeatureCollection"
        for f in data["features"]:
            assert f["properties"]["objectType"] == "annotation"
            assert set(f["properties"]["classification"]) == {"name", "color"}


def test_exhaustive_truth_is_a_valid_partition_with_class_colours(synth_small, truth):
    colors = {c.name: c.color for c in SYNTH_CLASSES.classes}
    assert all(o.geometry.is_valid and o.geometry.geom_type == "Polygon" for o in truth)
    assert all(tuple(o.class_color) == colors[o.classification] for o in truth)
    assert sum(o.geometry.area for o in truth) == pytest.approx(4096 * 4096, rel=1e-9)
    counts = {n: sum(o.classification == n for o in truth) for n in SYNTH_CLASSES.names}
    assert counts == synth_small.n_objects
    assert all(v >= 1 for v in counts.values())


def test_truth_file_rasterises_to_the_rendered_labels(synth_small, truth):
    layout = make_layout(synth_small.config)
    shapes = [(o.geometry, SYNTH_CLASSES.index_of(o.classification)) for o in truth]
    for box, mpp in [((0, 0, 4096, 4096), 2.0), ((1024, 1536, 1024, 1024), 0.25)]:
        got = rasterize(shapes, box, mpp / 0.25, fill=255)
        np.testing.assert_array_equal(got, render_labels(layout, box, mpp))


def test_partial_is_a_subset_with_gaps(synth_small, truth, partial):
    by_class = {n: shapely.union_all([o.geometry for o in truth if o.classification == n])
                for n in SYNTH_CLASSES.names}
    assert 0 < len(partial) < len(truth) + 1
    gap_px = synth_small.config.partial_gap_um / synth_small.config.mpp
    for o in partial:
        assert o.geometry.is_valid
        assert by_class[o.classification].buffer(1e-6).contains(o.geometry)
        # each partial region keeps clear of every other class by a thin band
        others = shapely.union_all([g for n, g in by_class.items() if n != o.classification])
        dist = o.geometry.distance(others)
        assert dist >= 0.25 * gap_px / 2 - 1e-6, (o.classification, dist)
    covered = shapely.union_all([o.geometry for o in partial]).area
    assert 0.3 * 4096 ** 2 < covered < 0.97 * 4096 ** 2
    # some components are left out, and background is only partly annotated
    bg_part = sum(o.geometry.area for o in partial if o.classification == "Background")
    assert bg_part < 0.8 * by_class["Background"].area
    names = {o.classification for o in partial}
    assert {"Stroma", "Carcinoma", "TLS"} <= names


def test_partial_labels_leave_unlabelled_bands_at_boundaries(synth_small, partial):
    shapes = [(o.geometry, SYNTH_CLASSES.index_of(o.classification)) for o in partial]
    lab = rasterize(shapes, (0, 0, 4096, 4096), 4.0, fill=255)
    layout = make_layout(synth_small.config)
    full = render_labels(layout, (0, 0, 4096, 4096), 1.0)
    labelled = lab != 255
    assert np.array_equal(lab[labelled], full[labelled])
    # next to every class boundary of the full labels the partial labels are empty
    boundary = np.zeros_like(labelled)
    boundary[:, 1:] |= full[:, 1:] != full[:, :-1]
    boundary[1:, :] |= full[1:, :] != full[:-1, :]
    assert not labelled[boundary].any()


def test_mitoses_are_points_inside_carcinoma(synth_small, truth):
    mit = read_geojson(synth_small.mitoses)
    assert len(mit) == synth_small.n_mitoses >= 1
    carc = shapely.union_all([o.geometry for o in truth if o.classification == "Carcinoma"])
    for o in mit:
        assert o.geometry.geom_type == "Point" and o.classification == "Mitosis"
        assert carc.contains(o.geometry)


def test_same_seed_same_files(tmp_path):
    cfg = SynthConfig(width=1536, height=1280, seed=4, compression="zlib", tile=256)
    a = synthesize(tmp_path / "a" / "s.tif", cfg)
    b = synthesize(tmp_path / "b" / "s.tif", cfg)
    import tifffile

    for k in range(len(a.levels)):
        np.testing.assert_array_equal(tifffile.imread(a.slide, key=k),
                                      tifffile.imread(b.slide, key=k))
    for pa, pb in ((a.truth, b.truth), (a.partial, b.partial), (a.mitoses, b.mitoses)):
        assert pa.read_bytes() == pb.read_bytes()
