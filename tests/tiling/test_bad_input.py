"""Issue 2's bad inputs for tiling, through the Python API and the CLI."""

import json

import numpy as np
import pytest
import tifffile

from magnipath._errors import AnnotationError, Cancelled, SlideError, TilingError
from magnipath.cli import main
from magnipath.dataset import open_dataset
from magnipath.geometry import TileGeometry
from magnipath.slide import open_slide
from magnipath.synth import SYNTH_CLASSES
from magnipath.tiling import SlideSource, TilingConfig, TilingWarning, make_dataset

from ._helpers import no_leftovers

CARCINOMA, TLS = SYNTH_CLASSES.index_of("Carcinoma"), SYNTH_CLASSES.index_of("TLS")
SMALL = dict(geometry=TileGeometry.single(1.0, 32), stride=256)   # 10x, a tile every 1024 px


def feature(coords, cls):
    props = {"objectType": "annotation"}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [200, 0, 0]}
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [coords]},
            "properties": props}


@pytest.fixture
def bad_geojson(tmp_path, synth_small):
    """The ground truth plus: a polygon reaching outside the slide, one entirely outside,
    a self-intersecting 'bowtie' and an unclassified polygon."""
    data = json.loads(synth_small.truth.read_text())
    data["features"] += [
        feature([[-300, -300], [300, -300], [300, 300], [-300, 300], [-300, -300]], "Carcinoma"),
        feature([[5000, 10], [5100, 10], [5100, 90], [5000, 10]], "Carcinoma"),
        feature([[1100, 1100], [1300, 1300], [1300, 1100], [1100, 1300], [1100, 1100]], "TLS"),
        feature([[2000, 2000], [2100, 2000], [2100, 2100], [2000, 2000]], None),
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def classes_json(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(SYNTH_CLASSES.to_dict()))
    return path


def cli(capsys, *args):
    rc = main(["tile", *map(str, args), "--quiet"])
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())   # the CLI wraps messages at 100 columns


def test_outside_clipped_invalid_repaired_unclassified_skipped(tmp_path, synth_small,
                                                                bad_geojson):
    cfg = TilingConfig(geometry=TileGeometry.single(0.5, 256), min_tissue=0.0)
    with pytest.warns(TilingWarning) as rec:
        s = make_dataset([SlideSource(synth_small.slide, bad_geojson)], tmp_path / "ds",
                         class_map=SYNTH_CLASSES, config=cfg)
    messages = " ".join(str(w.message) for w in rec)
    assert "clipped" in messages and "repaired" in messages and "unclassified" in messages
    assert (s["clipped"], s["outside"], s["invalid_repaired"], s["unclassified_skipped"]) == \
        (1, 1, 1, 1)
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["summary"]["clipped"] == 1
    assert ds.manifest["summary"]["invalid_repaired"] == 1
    boxes = {tuple(r["box"][:2]): i for i, r in enumerate(ds.records)}
    # the clipped square covers level-0 [0, 300)^2 = target px [0, 150)^2 of the corner tile
    corner = ds.label(boxes[(0, 0)])
    assert (corner[:150, :150] == CARCINOMA).all() and not (corner[150:] == CARCINOMA).all()
    # the repaired bowtie: two triangles meeting at (1200, 1200); tile at (1024, 1024)
    bow = ds.label(boxes[(1024, 1024)])
    assert bow[(1150 - 1024) // 2, (1110 - 1024) // 2] == TLS      # left triangle
    assert bow[(1150 - 1024) // 2, (1290 - 1024) // 2] == TLS      # right triangle
    assert bow[(1110 - 1024) // 2, (1200 - 1024) // 2] != TLS      # between them (top)


def test_outside_and_invalid_via_cli(tmp_path, synth_small, bad_geojson, classes_json, capsys):
    rc, out, err = cli(capsys, synth_small.slide, "--annotations", bad_geojson, "--classes",
                       classes_json, "--out", tmp_path / "ds", "--stride", 128, "--size", 32,
                       "--magnification", 10, "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert (s["clipped"], s["outside"], s["invalid_repaired"]) == (1, 1, 1)
    assert any("clipped" in w for w in s["warnings"])
    assert open_dataset(tmp_path / "ds").manifest["summary"]["invalid_repaired"] == 1


def test_classes_missing_from_map_listed(tmp_path, synth_small, capsys):
    missing = sorted(set(SYNTH_CLASSES.names) - {"Stroma", "TLS"})
    with pytest.raises(AnnotationError) as e:
        make_dataset([SlideSource(synth_small.slide, synth_small.truth)], tmp_path / "ds",
                     class_map=SYNTH_CLASSES.parse("Stroma=1,TLS=2"),
                     config=TilingConfig(**SMALL))
    assert all(repr(n) in str(e.value) for n in missing), str(e.value)
    assert str(synth_small.truth) in str(e.value)
    assert no_leftovers(tmp_path, "ds")
    rc, _, err = cli(capsys, synth_small.slide, "--annotations", synth_small.truth,
                     "--classes", "Stroma=1,TLS=2", "--out", tmp_path / "ds")
    assert rc == 1 and all(n in err for n in missing), err
    assert no_leftovers(tmp_path, "ds")


def test_no_tile_passes_writes_nothing(tmp_path, synth_small, capsys):
    # tissue passes, then every tile fails the label filter (no annotations at all)
    with pytest.raises(TilingError, match="no tile passed the filters") as e:
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds",
                     config=TilingConfig(**SMALL, min_labelled=0.5))
    assert "--min-labelled" in str(e.value)
    assert no_leftovers(tmp_path, "ds")
    # every tile fails the tissue filter (one 1x tile reaching past the slide)
    with pytest.raises(TilingError, match="no tile passed"):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds",
                     config=TilingConfig(geometry=TileGeometry.single(10.0, 128),
                                         min_tissue=1.0))
    assert no_leftovers(tmp_path, "ds")
    rc, out, err = cli(capsys, synth_small.slide, "--annotations", synth_small.partial,
                       "--out", tmp_path / "ds", "--require-class", "TLS",
                       "--min-tissue", 1, "--magnification", 1, "--size", 128)
    assert rc == 1 and "no tile passed" in err and out == ""
    assert no_leftovers(tmp_path, "ds")


def test_upsampling_refused_unless_allowed(tmp_path, synth_small, capsys):
    g = TileGeometry.single(0.125, 32)   # 80x on a 40x scan
    with pytest.raises(TilingError, match="allow-upsample"):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds",
                     config=TilingConfig(geometry=g, stride=4096))
    assert no_leftovers(tmp_path, "ds")
    rc, _, err = cli(capsys, synth_small.slide, "--out", tmp_path / "ds",
                     "--magnification", 80, "--size", 32, "--stride", 4096)
    assert rc == 1 and "finer than the scan" in err and no_leftovers(tmp_path, "ds")
    rc, _, err = cli(capsys, synth_small.slide, "--out", tmp_path / "ds", "--magnification",
                     80, "--size", 32, "--stride", 2048, "--allow-upsample", "--min-tissue", 0)
    assert rc == 0, err
    ds = open_dataset(tmp_path / "ds")
    assert ds.geometry.target_mpp == 0.125 and len(ds) == 5 * 5   # every 1024 l0 px
    with open_slide(synth_small.slide) as slide:
        box = tuple(ds.records[5]["box"])
        ref = slide.read_region(box, mpp=0.125, out_shape=(32, 32), allow_upsample=True)
    np.testing.assert_array_equal(ds.images(5)[0], ref)


def test_cancel_leaves_nothing_and_keeps_an_old_dataset(tmp_path, synth_small):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    cfg = TilingConfig(**SMALL, min_tissue=0.0)
    with pytest.raises(Cancelled):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds", config=cfg,
                     cancel=cancel)
    assert no_leftovers(tmp_path, "ds")
    with pytest.warns(TilingWarning, match="without annotations"):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds", config=cfg)
    old = open_dataset(tmp_path / "ds").manifest["dataset_id"]
    calls.clear()
    with pytest.raises(Cancelled):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds",
                     config=TilingConfig(**SMALL, min_tissue=0.0, workers=1), cancel=cancel)
    assert open_dataset(tmp_path / "ds").manifest["dataset_id"] == old
    assert not list(tmp_path.glob(".ds.*"))
    with pytest.warns(TilingWarning):     # a finished run replaces the old dataset
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "ds", config=cfg)
    assert open_dataset(tmp_path / "ds").manifest["dataset_id"] != old


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path, synth_small):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(TilingError, match="not a MagniPath tile dataset"):
        make_dataset([SlideSource(synth_small.slide)], tmp_path / "mine",
                     config=TilingConfig(**SMALL))
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"


def test_unreadable_annotations_and_bad_pairing(tmp_path, synth_small, capsys):
    bad = tmp_path / "broken.geojson"
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match=r"broken\.geojson"):
        make_dataset([SlideSource(synth_small.slide, bad)], tmp_path / "ds",
                     config=TilingConfig(**SMALL))
    rc, _, err = cli(capsys, synth_small.slide, "--annotations", bad, "--out", tmp_path / "ds")
    assert rc == 1 and "broken.geojson" in err
    rc, _, err = cli(capsys, synth_small.slide, synth_small.slide, "--annotations", bad,
                     "--out", tmp_path / "ds")
    assert rc == 1 and "one per slide" in err
    assert no_leftovers(tmp_path, "ds")


def test_slide_without_mpp_points_to_mpp_override(tmp_path, capsys):
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, np.full((256, 256, 3), 200, np.uint8), tile=(128, 128))
    with pytest.raises(SlideError):
        make_dataset([SlideSource(path)], tmp_path / "ds", config=TilingConfig(**SMALL))
    rc, _, err = cli(capsys, path, "--out", tmp_path / "ds")
    assert rc == 1 and "--mpp-override" in err
    assert no_leftovers(tmp_path, "ds")
