"""Detection over slides, regions and arrays; QuPath output; evaluation against points."""

import json

import numpy as np
import pytest

from magnipath.cli import main
from magnipath.mitosis import (
    PROBABILITY,
    MitosisTrainConfig,
    detect,
    evaluate,
    load_points,
    train,
)
from magnipath.slide import open_slide
from qupath_bridge.geojson import read_geojson


@pytest.fixture(scope="module")
def model_dir(tiles, tmp_path_factory):
    out = tmp_path_factory.mktemp("mitosis_model") / "m"
    cfg = MitosisTrainConfig(filters=(8, 16), affine=32, epochs=1, lr=1e-3, device="cpu")
    train(tiles[0], None, out, cfg)
    return out


def test_heat_map_covers_the_region_and_skips_glass(model_dir, mitosis_slides):
    region = (256.0, 128.0, 640.0, 448.0)
    det = detect(model_dir, mitosis_slides[1].slide, region=region)
    assert det.heatmap.shape == (7, 10) and det.step == det.tile_size == 64
    assert det.origin == (256.0, 128.0)
    assert len(det.probs) == np.isfinite(det.heatmap).sum() == len(det.boxes)
    r = ((det.boxes[:, 1] - 128) // 64).astype(int)
    c = ((det.boxes[:, 0] - 256) // 64).astype(int)
    assert np.array_equal(det.heatmap[r, c], det.probs)


def test_array_input_gives_the_same_probabilities(model_dir, mitosis_slides):
    region = (0.0, 0.0, 512.0, 512.0)
    det = detect(model_dir, mitosis_slides[1].slide, region=region)
    with open_slide(mitosis_slides[1].slide) as s:
        rgb = s.read_region(region)
    det2 = detect(model_dir, rgb)
    np.testing.assert_array_equal(det.heatmap, det2.heatmap)


def test_detections_are_qupath_objects_with_a_probability(model_dir, mitosis_slides, tmp_path):
    det = detect(model_dir, mitosis_slides[1].slide)
    cut = float(np.median(det.probs))
    path = det.write_geojson(tmp_path / "d.geojson", cut)
    objs = read_geojson(path)
    assert len(objs) == int((det.probs > cut).sum()) > 0
    for o in objs:
        assert o.object_type == "detection" and o.classification == "Mitosis"
        assert o.measurements[PROBABILITY] > cut
        assert o.geometry.area == pytest.approx(64 * 64)
    pts = det.objects(cut, as_points=True)
    assert all(p.geometry.geom_type == "Point" for p in pts)


def test_evaluate_against_points(model_dir, mitosis_slides):
    res = evaluate(model_dir, mitosis_slides[1:])
    t = res["tiles"]
    assert t["tp"] + t["fp"] + t["fn"] + t["tn"] == t["n"] > 0
    assert t["tp"] + t["fn"] > 0  # the slide has positive tiles
    assert res["points"]["points"] == len(load_points(mitosis_slides[1].points))
    assert 0.0 <= res["points"]["point_recall"] <= 1.0


def test_cli_train_detect_evaluate(mitosis_slides, tmp_path, capsys):
    slide = str(mitosis_slides[0].slide)
    model = tmp_path / "cli_model"
    rc = main(["mitosis", "train", slide, "--out", str(model), "--filters", "8,8",
               "--affine", "16", "--epochs", "1", "--lr", "1e-3", "--device", "cpu",
               "--max-negative-ratio", "4", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["positive_tiles"] > 0 and summary["epochs"] == 1
    rc = main(["mitosis", "detect", slide, "--model", str(model), "--out",
               str(tmp_path / "d.geojson"), "--heatmap", str(tmp_path / "heat"),
               "--region", "0,0,512,512", "--threshold", "0", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    heat = np.load(tmp_path / "heat.npy")
    assert list(heat.shape) == out["heatmap_shape"] == [8, 8]
    meta = json.loads((tmp_path / "heat.json").read_text())
    assert meta["step"] == 64 and meta["origin_xy"] == [0.0, 0.0]
    assert len(read_geojson(tmp_path / "d.geojson")) == out["detections"]
    rc = main(["mitosis", "evaluate", slide, "--model", str(model), "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["tiles"]["n"] > 0


def test_cli_user_errors(mitosis_slides, tmp_path, capsys):
    rc = main(["mitosis", "train", str(mitosis_slides[0].slide), "--out", str(tmp_path / "m"),
               "--points", "a.geojson", "b.geojson"])
    assert rc == 1 and "one GeoJSON per slide" in capsys.readouterr().err
    rc = main(["mitosis", "detect", str(mitosis_slides[0].slide), "--model", str(tmp_path),
               "--out", str(tmp_path / "x.geojson")])
    assert rc == 1 and "not a mitosis model folder" in capsys.readouterr().err


def test_cli_on_a_slide_without_mpp(model_dir, mitosis_slides, tmp_path, capsys):
    import tifffile

    from magnipath.magnification import closest_magnification, suggest_mpp

    # the 512 px block with the most stroma, where this slide's lymphocytes (the physical
    # estimate's ruler) are; the corner block (62 % glass) holds too few since the
    # synthetic nuclei became soft-rimmed sectioned spheres (issue 15 item 4)
    region = (512.0, 0.0, 512.0, 512.0)
    with open_slide(mitosis_slides[1].slide) as s:
        rgb, mpp = s.read_region(region), s.mpp
    path = tmp_path / "no mpp.tif"
    tifffile.imwrite(path, rgb, tile=(128, 128), photometric="rgb")  # no resolution tags
    detect_args = ["mitosis", "detect", str(path), "--model", str(model_dir), "--out",
                   str(tmp_path / "d.geojson"), "--json"]
    assert main(detect_args) == 1
    err = "".join(capsys.readouterr().err.split())  # the CLI wraps long errors
    assert "--slide-mpp" in err and "magnipathmagnificationsuggest-mpp" in err

    assert main([*detect_args, "--slide-mpp", str(mpp), "--heatmap", str(tmp_path / "h")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["slide_mpp"] == pytest.approx(mpp) and out["slide_mpp_source"] == "override"
    meta = json.loads((tmp_path / "h.json").read_text())
    assert meta["slide_mpp_source"] == "override"
    same = detect(model_dir, mitosis_slides[1].slide, region=region)  # the original file
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), same.heatmap)

    assert main([*detect_args, "--slide-mpp", str(2 * mpp)]) == 1  # coarser than the model
    assert "coarser than" in capsys.readouterr().err

    # the same pixels twice as large: the estimate (finer than 40x) lets it run
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.repeat(np.repeat(rgb, 2, 0), 2, 1), tile=(128, 128),
                     photometric="rgb")
    expected, _ = suggest_mpp(big)
    assert expected is not None and expected <= mpp
    assert main(["mitosis", "detect", str(big), "--model", str(model_dir), "--out",
                 str(tmp_path / "e.geojson"), "--slide-mpp", "estimate", "--json",
                 "--heatmap", str(tmp_path / "he")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["slide_mpp"] == pytest.approx(expected)
    assert out["slide_mpp_source"] == "estimated (physical)"
    assert out["slide_mpp_estimate"]["magnification"] == closest_magnification(10 / expected)
    meta = json.loads((tmp_path / "he.json").read_text())  # the heat map says it too
    assert meta["slide_mpp"] == pytest.approx(expected)
    assert meta["slide_mpp_source"] == "estimated (physical)"
    assert meta["slide_mpp_estimate"] == out["slide_mpp_estimate"]

    assert main(["mitosis", "evaluate", str(big), "--model", str(model_dir), "--points",
                 str(mitosis_slides[1].points), "--slide-mpp", "estimate", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["tiles"]["n"] > 0
    assert res["slide_mpp"][str(big)]["mpp_source"] == "estimated (physical)"
