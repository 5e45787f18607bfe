"""Evaluation of hand-made prediction stores against hand-made truth polygons.

Every expected value below is counted by hand from the pictures in the comments
(label pixels; ``.`` = no truth).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import box

from magnipath.classes import ClassMap
from magnipath.cli import main
from magnipath.evaluate import EvaluateError, evaluate_labels, evaluate_prediction, format_table
from magnipath.infer import PredictionStore
from qupath_bridge.geojson import write_geojson
from qupath_bridge.objects import QuPathObject

THREE = ClassMap.from_names(["Background", "Stroma", "TLS"])
ORIGIN, D = (100.0, 200.0), 4.0  # label pixel (r, c) covers level-0 x 100 + 4c, y 200 + 4r


def make_store(path, labels: np.ndarray, classes: ClassMap, *, origin=ORIGIN, downsample=D,
               seconds=12.0):
    """A finished prediction store holding ``labels``, written with the store's own API."""
    fill = 0 if "Background" in classes.names else classes.ignore_index
    h, w = labels.shape
    store = PredictionStore(
        path, signature={"slide": "hand-made.tif"}, out_shape=(h, w),
        n_classes=classes.n_classes, chunk=16, fill=fill, probabilities=False,
        meta={"target_mpp": 0.5 * downsample, "origin": list(origin),
              "downsample": downsample, "class_map": classes.to_dict(),
              "slide": "hand-made.tif"})
    for cy in range(0, h, 16):
        for cx in range(0, w, 16):
            ext = (cy, min(cy + 16, h), cx, min(cx + 16, w))
            store.write_chunk(cy // 16, cx // 16, ext, labels[ext[0]:ext[1], ext[2]:ext[3]], None)
    store.finish(0.5 * downsample, {"seconds": seconds})
    return path


def cells(c0, r0, c1, r1, origin=ORIGIN, d=D):
    """Level-0 polygon covering label columns c0..c1-1 and rows r0..r1-1."""
    return box(origin[0] + c0 * d, origin[1] + r0 * d, origin[0] + c1 * d, origin[1] + r1 * d)


def obj(geom, name):
    return QuPathObject(geometry=geom, classification=name)


def test_slide_metrics_by_hand(tmp_path):
    # prediction (8 x 8):  SSSS BBBB   truth: ..SS SSBB  (every row)
    labels = np.zeros((8, 8), np.uint8)
    labels[:, :4] = 1
    truth = [obj(cells(2, 0, 6, 8), "Stroma"), obj(cells(6, 0, 8, 8), "Background")]
    store = make_store(tmp_path / "p.zarr", labels, THREE)
    res = evaluate_prediction(store, truth)
    s = res["slide"]
    assert s["n_pixels"] == 48 and s["not_predicted_pixels"] == 0
    st, bg = s["per_class"]["Stroma"], s["per_class"]["Background"]
    # Stroma: TP 16, FN 16, FP 0, TN 16; Background: TP 16, FP 16, FN 0, TN 16
    assert (st["iou"], st["dice"], st["precision"], st["recall"], st["specificity"]) == \
        pytest.approx((0.5, 2 / 3, 1.0, 0.5, 1.0))
    assert (bg["iou"], bg["dice"], bg["precision"], bg["recall"], bg["specificity"]) == \
        pytest.approx((0.5, 2 / 3, 0.5, 1.0, 0.5))
    assert s["per_class"]["TLS"]["iou"] is None  # absent from truth and prediction
    assert s["overall"]["accuracy"] == pytest.approx(32 / 48)
    assert s["overall"]["mean_iou"] == pytest.approx(0.5)
    assert s["overall"]["mcc"] == pytest.approx(0.5)  # (48*32 - 1024) / 1024
    assert s["confusion_matrix"] == [[16, 0, 0], [16, 16, 0], [0, 0, 0]]
    assert res["infer_seconds"] == 12.0 and res["slides_per_minute"] == pytest.approx(5.0)
    assert res["slide_path"] == "hand-made.tif"


def test_tile_view_counts_only_tiles_that_contain_the_class(tmp_path):
    # truth: Stroma everywhere, TLS on rows 0-1 x cols 0-1 (drawn later, on top)
    # prediction: TLS on rows 0-1 x cols 0-2, Stroma elsewhere; tiles of 4 x 4 label px
    labels = np.ones((8, 8), np.uint8)
    labels[:2, :3] = 2
    truth = [obj(cells(0, 0, 8, 8), "Stroma"), obj(cells(0, 0, 2, 2), "TLS")]
    res = evaluate_labels(labels, truth, class_map=THREE, origin=ORIGIN, downsample=D,
                          tile_size=4)
    slide_tls = res["slide"]["per_class"]["TLS"]
    tile_tls = res["tiles"]["TLS"]
    assert tile_tls["n_tiles"] == 1 and res["tiles"]["Stroma"]["n_tiles"] == 4
    assert "Background" not in res["tiles"]
    # TLS: TP 4, FP 2, FN 0 over the slide (TN 58) and over the one tile (TN 10)
    assert slide_tls["iou"] == tile_tls["iou"] == pytest.approx(4 / 6)
    assert slide_tls["specificity"] == pytest.approx(58 / 60)
    assert tile_tls["specificity"] == pytest.approx(10 / 12)
    assert slide_tls["accuracy"] == pytest.approx(62 / 64)
    assert tile_tls["accuracy"] == pytest.approx(14 / 16)
    assert res["tiles"]["Stroma"]["iou"] == pytest.approx(58 / 60)
    table = format_table(res)
    assert "TLS" in table and "n=1" in table and "0.667" in table


def test_pixels_no_window_predicted_count_as_errors(tmp_path):
    two = ClassMap.from_names(["Stroma", "TLS"])  # no Background: fill is the ignore index
    # prediction (4 x 4): row 0 not predicted; rows 1-3: T S S S
    # truth: TLS on cols 0-1, Stroma on cols 2-3 (every row)
    labels = np.zeros((4, 4), np.uint8)
    labels[0] = two.ignore_index
    labels[1:, 0] = 1
    truth = [obj(cells(0, 0, 2, 4, (0, 0), 1), "TLS"), obj(cells(2, 0, 4, 4, (0, 0), 1), "Stroma")]
    store = make_store(tmp_path / "p.zarr", labels, two, origin=(0.0, 0.0), downsample=1.0)
    s = evaluate_prediction(store, truth)["slide"]
    assert s["not_predicted_pixels"] == 4 and s["n_pixels"] == 16
    tls, st = s["per_class"]["TLS"], s["per_class"]["Stroma"]
    assert (tls["iou"], tls["precision"], tls["recall"]) == pytest.approx((3 / 8, 1.0, 3 / 8))
    assert (st["iou"], st["precision"], st["recall"]) == pytest.approx((6 / 11, 6 / 9, 6 / 8))
    assert st["specificity"] == pytest.approx(5 / 8)
    assert set(s["per_class"]) == {"Stroma", "TLS"}
    assert s["overall"]["accuracy"] == pytest.approx(9 / 16)
    assert s["mean"]["iou"] == pytest.approx((3 / 8 + 6 / 11) / 2)


def test_truth_of_other_classes_and_empty_truth_are_reported(tmp_path):
    labels = np.ones((8, 8), np.uint8)
    truth = [obj(cells(0, 0, 8, 8), "Lymphocyte")]
    res = evaluate_labels(labels, truth, class_map=THREE, origin=ORIGIN, downsample=D)
    assert res["skipped_truth_classes"] == {"Lymphocyte": 1}
    assert res["slide"]["n_pixels"] == 0 and res["slide"]["overall"]["mean_iou"] is None
    assert any("no labelled truth" in n for n in res["notes"])
    format_table(res)  # undefined values print as '-'
    with pytest.raises(EvaluateError, match="not found"):
        evaluate_labels(labels, tmp_path / "none.geojson", class_map=THREE, origin=ORIGIN,
                        downsample=D)
    with pytest.raises(EvaluateError, match="Lymphocyte"):
        evaluate_labels(labels, [], class_map=THREE, origin=ORIGIN, downsample=D,
                        tile_classes=["Lymphocyte"])


def test_evaluate_cli_json_and_table(tmp_path, capsys):
    labels = np.zeros((8, 8), np.uint8)
    labels[:, :4] = 1
    store = make_store(tmp_path / "p.zarr", labels, THREE)
    gj = write_geojson([obj(cells(2, 0, 6, 8), "Stroma"), obj(cells(6, 0, 8, 8), "Background")],
                       tmp_path / "truth.geojson")
    assert main(["evaluate", str(store), "--truth", str(gj), "--json", "--tile-size", "4",
                 "--out", str(tmp_path / "full.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mean_iou"] == pytest.approx(0.5)
    assert summary["per_class_iou"] == {"Background": 0.5, "Stroma": 0.5, "TLS": None}
    assert summary["tiles"]["Stroma"]["n_tiles"] == 4
    full = json.loads((tmp_path / "full.json").read_text())
    assert full["slide"]["confusion_matrix"] == [[16, 0, 0], [16, 16, 0], [0, 0, 0]]
    assert main(["evaluate", str(store), "--truth", str(gj), "--quiet"]) == 0
    out = capsys.readouterr().out  # the table is the last thing printed
    assert "Stroma" in out and "mIoU 0.500" in out and "slides per minute" in out
    assert main(["evaluate", str(store), "--truth", str(tmp_path / "missing.geojson")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--truth", str(gj)]) == 1
    assert "not a MagniPath prediction store" in capsys.readouterr().err


def test_slide_view_does_not_depend_on_tiles_or_storage_chunks(tmp_path):
    from magnipath.metrics import ConfusionMatrix
    from magnipath.rasterize import rasterize

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    names = THREE.names
    truth = []
    for _ in range(12):
        c0, r0 = rng.integers(0, 45), rng.integers(0, 35)
        c1, r1 = c0 + rng.integers(1, 20), r0 + rng.integers(1, 20)
        truth.append(obj(cells(c0, r0, c1, r1).buffer(0.7, join_style="mitre"),
                         names[rng.integers(0, 3)]))
    # brute force: the whole truth rasterised at once
    whole = rasterize([(o.geometry, THREE.index_of(o.classification)) for o in truth],
                      (ORIGIN[0], ORIGIN[1], 200.0, 160.0), D, labels.shape,
                      fill=THREE.ignore_index)
    cm = ConfusionMatrix(3)
    cm.update(labels, whole)
    store = make_store(tmp_path / "p.zarr", labels, THREE)  # 16 px storage chunks
    for tile in (3, 7, 16, 64):
        a = evaluate_prediction(store, truth, tile_size=tile)["slide"]
        b = evaluate_labels(labels, truth, class_map=THREE, origin=ORIGIN, downsample=D,
                            tile_size=tile)["slide"]
        assert a["confusion_matrix"] == b["confusion_matrix"] == cm.matrix.tolist()
