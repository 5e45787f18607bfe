"""The demo pipeline end to end, at a tiny size (the real demo is `magnipath demo`)."""

import json

from magnipath.cli import main
from qupath_bridge.geojson import read_geojson


def test_demo_runs_end_to_end_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--size", "4096", "--n-train", "2",
                 "--train-seconds", "3", "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    # every stage wrote what it says it wrote
    assert (out / "dataset" / "manifest.json").exists()
    assert (out / "model" / "model_card.json").exists()
    assert summary["dataset"]["n_tiles"] > 0
    m = summary["metrics"]
    assert 0.0 <= m["mean_iou"] <= 1.0 and set(m["iou"]) >= {"TLS", "Carcinoma", "Stroma"}
    objs = read_geojson(summary["objects"]["geojson"])  # valid QuPath GeoJSON, maybe empty
    assert all(o.classification in ("TLS", "Carcinoma") for o in objs)
    assert summary["qupath"]["written"] in (True, False)
    assert set(summary["timings_s"]) >= {"synth_s", "tile_s", "train_s", "infer_s", "total_s"}
