"""make_dataset on the synthetic slide: pixel-exact labels and images, context, filters."""

import numpy as np
import pytest

from magnipath.dataset import open_dataset
from magnipath.geometry import TileGeometry
from magnipath.slide import open_slide
from magnipath.synth import SYNTH_CLASSES
from magnipath.tiling import (
    SlideSource,
    TilingConfig,
    TilingWarning,
    make_dataset,
    point_probability_map,
)
from qupath_bridge.geojson import read_geojson

from ._helpers import truth_label

IGNORE = SYNTH_CLASSES.ignore_index


@pytest.mark.parametrize("magnification", [40, 20, 10, 5])
def test_labels_and_images_pixel_exact(tmp_path, synth_small, truth_shapes, magnification):
    mpp, size = 10 / magnification, 64
    d = mpp / 0.25
    stride = round(640 / d)   # sparse grid: a tile every 640 level-0 px
    cfg = TilingConfig(geometry=TileGeometry.single(mpp, size), stride=stride, min_tissue=0.0)
    s = make_dataset([SlideSource(synth_small.slide, synth_small.truth)], tmp_path / "ds",
                     class_map=SYNTH_CLASSES, config=cfg)
    ds = open_dataset(tmp_path / "ds")
    assert s["n_tiles"] == len(ds) == s["tiles_considered"] >= 36
    with open_slide(synth_small.slide) as slide:
        for i, rec in enumerate(ds.records):
            box = tuple(rec["box"])
            assert box[2] == box[3] == size * d
            want = truth_label(truth_shapes, box, d, size)
            np.testing.assert_array_equal(ds.label(i), want, err_msg=f"tile {i} {box}")
            img = slide.read_region(box, mpp=mpp, out_shape=(size, size))
            np.testing.assert_array_equal(ds.images(i)[0], img, err_msg=f"tile {i} {box}")
            counts = np.bincount(want[want != IGNORE], minlength=SYNTH_CLASSES.n_classes)
            assert rec["class_counts"] == counts.tolist()
            assert rec["labelled"] == pytest.approx((want != IGNORE).mean(), abs=1e-4)
    # the ground truth is exhaustive: tiles inside the slide are fully labelled
    inside = [i for i, r in enumerate(ds.records)
              if r["box"][0] + r["box"][2] <= 4096 and r["box"][1] + r["box"][3] <= 4096]
    assert inside and all(ds.records[i]["labelled"] == 1.0 for i in inside)


def test_dmmn_context_matches_independent_reads(tmp_path, synth_small):
    g = TileGeometry.dmmn(0.5, 64)      # 64 px at 20x + 128 px seen at 10x + 256 px seen at 5x
    cfg = TilingConfig(geometry=g, stride=320, min_tissue=0.0, workers=3)
    make_dataset([SlideSource(synth_small.slide, synth_small.truth)], tmp_path / "ds",
                 class_map=SYNTH_CLASSES, config=cfg)
    ds = open_dataset(tmp_path / "ds")
    assert ds.geometry == g and ds.images(0).shape == (3, 64, 64, 3)
    with open_slide(synth_small.slide) as slide:
        for i in range(0, len(ds), 5):
            box = tuple(ds.records[i]["box"])
            x, y, w, _ = box
            stack = ds.images(i)
            for k, (mpp, side) in enumerate([(0.5, 128), (1.0, 256), (2.0, 512)]):
                cbox = (x + w / 2 - side / 2, y + w / 2 - side / 2, side, side)
                ref = slide.read_region(cbox, mpp=mpp, out_shape=(64, 64))
                np.testing.assert_array_equal(stack[k], ref, err_msg=f"tile {i} input {k}")
            # concentric: the middle of each context input is the target's field of view
            np.testing.assert_array_equal(
                stack[1][16:48, 16:48], slide.read_region(box, mpp=1.0, out_shape=(32, 32)))
            np.testing.assert_array_equal(
                stack[2][24:40, 24:40], slide.read_region(box, mpp=2.0, out_shape=(16, 16)))
    # the corner tile: context reaching past the slide is zero-padded
    assert tuple(ds.records[0]["box"][:2]) == (0, 0)
    corner = ds.images(0)
    assert not corner[1][:16].any() and not corner[1][:, :16].any()     # 64 l0 px / 4
    assert not corner[2][:24].any() and not corner[2][:, :24].any()     # 192 l0 px / 8
    assert corner[1][16:, 16:].min() > 0 and corner[2][24:, 24:].min() > 0


def _grid_dataset(tmp_path, synth, ann, name, **kw):
    cfg = TilingConfig(geometry=TileGeometry.single(1.0, 32), stride=96, **kw)
    s = make_dataset([SlideSource(synth.slide, ann)], tmp_path / name,
                     class_map=SYNTH_CLASSES, config=cfg)
    ds = open_dataset(tmp_path / name)
    return s, ds, {tuple(r["box"]): i for i, r in enumerate(ds.records)}


def test_filters_keep_exactly_the_tiles_that_pass(tmp_path, synth_small):
    _, full, boxes = _grid_dataset(tmp_path, synth_small, synth_small.partial, "all",
                                   min_tissue=0.0)
    recs = full.records
    assert len(recs) == 12 * 12    # 1 + ceil((4096 - 128) / 384) per side
    # partial annotations leave unlabelled (ignore) pixels
    assert any(0 < r["labelled"] < 1 for r in recs)
    assert sum((full.label(i) == IGNORE).sum() for i in range(0, len(full), 10)) > 0

    s, ds, kept = _grid_dataset(tmp_path, synth_small, synth_small.partial, "tissue",
                                min_tissue=0.5)
    assert set(kept) == {tuple(r["box"]) for r in recs if r["tissue"] >= 0.5}
    assert 0 < len(kept) < len(recs) and s["rejected"]["min_tissue"] == len(recs) - len(kept)

    s, ds, kept = _grid_dataset(tmp_path, synth_small, synth_small.partial, "labelled",
                                min_tissue=0.0, min_labelled=0.9)
    assert set(kept) == {tuple(r["box"]) for r in recs if r["labelled"] > 0.9}
    assert 0 < len(kept) < len(recs)

    tls = SYNTH_CLASSES.index_of("TLS")
    s, ds, kept = _grid_dataset(tmp_path, synth_small, synth_small.partial, "tls",
                                min_tissue=0.0, require_classes=("TLS",))
    assert set(kept) == {tuple(r["box"]) for r in recs if r["class_counts"][tls] > 0}
    assert 0 < len(kept) < len(recs) / 4
    assert all((ds.label(i) == tls).any() for i in range(len(ds)))
    # labels of a filtered dataset are those of the unfiltered one
    for b, i in list(kept.items())[:10]:
        np.testing.assert_array_equal(ds.label(i), full.label(boxes[b]))


def test_points_become_probability_maps(tmp_path, synth_small):
    pts = np.array([[o.geometry.x, o.geometry.y] for o in read_geojson(synth_small.mitoses)])
    assert len(pts) >= 1
    cfg = TilingConfig(geometry=TileGeometry.single(0.5, 128), stride=128, min_tissue=0.0,
                       point_class="Mitosis", point_a=0.2)
    s = make_dataset([SlideSource(synth_small.slide, synth_small.truth,
                                  points=synth_small.mitoses)],
                     tmp_path / "ds", class_map=SYNTH_CLASSES, config=cfg)
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["point_sigma"] == {"a": 0.2, "class": "Mitosis"}
    assert s["points"] == len(pts)
    assert sum(r["n_points"] for r in ds.records) == len(pts)
    for i, r in enumerate(ds.records):
        x, y = r["box"][:2]
        want = point_probability_map((pts - (x, y)) / 2.0, (128, 128), 0.2)
        np.testing.assert_allclose(ds.points(i), want, atol=1e-3, rtol=1e-3)  # float16
        if r["n_points"]:
            assert ds.points(i).max() > np.exp(-0.2 * 0.75)


def test_summary_and_manifest(tmp_path, synth_small):
    cfg = TilingConfig(geometry=TileGeometry.single(1.0, 64), stride=64)
    with pytest.warns(TilingWarning, match="derived from the annotation classes"):
        s = make_dataset([SlideSource(synth_small.slide, synth_small.truth, group="patient-7")],
                         tmp_path / "ds", config=cfg)     # no class map: derived
    ds = open_dataset(tmp_path / "ds")
    m = ds.manifest
    assert s["class_map_derived"] and m["class_map_derived"]
    assert ds.class_map.names == sorted(SYNTH_CLASSES.names)          # sorted, indices from 0
    assert [c.index for c in ds.class_map.classes] == list(range(7))
    assert ds.class_map.by_index(ds.class_map.index_of("TLS")).color == \
        SYNTH_CLASSES.by_index(SYNTH_CLASSES.index_of("TLS")).color    # colours from the file
    assert m["slides"][0]["group"] == "patient-7" and m["slides"][0]["split"] == "train"
    assert m["n_tiles"] == len(ds) == s["n_tiles"] and s["tiles_per_s"] > 0
    assert m["stride"] == 64 and m["geometry"]["inputs"][0]["magnification"] == 10.0
    total = sum(np.bincount(ds.label(i).ravel(), minlength=256)[:7] for i in range(len(ds)))
    np.testing.assert_array_equal(ds.class_pixel_counts(), total)
    assert m["class_pixel_counts"]["all"] == total.tolist() == m["class_pixel_counts"]["train"]
    assert ds.points(0) is None and not ds.has_points


def test_glass_unlabelled_leaves_only_the_masks_glass_unlabelled(tmp_path, synth_small,
                                                                  truth_shapes):
    from magnipath.tissue import detect_tissue

    mpp, size = 2.0, 64
    d = mpp / 0.25
    cfg = TilingConfig(geometry=TileGeometry.single(mpp, size), min_tissue=0.05,
                       glass_unlabelled=True)
    make_dataset([SlideSource(synth_small.slide, synth_small.truth)], tmp_path / "ds",
                 class_map=SYNTH_CLASSES, config=cfg)
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["filters"]["glass_unlabelled"] is True
    with open_slide(synth_small.slide) as slide:
        mask = detect_tissue(slide, mpp=cfg.tissue_mpp)
    glass_seen = tissue_seen = 0
    for i, rec in enumerate(ds.records):
        box = tuple(rec["box"])
        want = truth_label(truth_shapes, box, d, size)
        tissue = mask.at_pixels(box[:2], d, (size, size))
        got = ds.label(i)
        np.testing.assert_array_equal(got[tissue], want[tissue])   # the truth on tissue
        assert (got[~tissue] == IGNORE).all()                       # nothing on glass
        glass_seen += int((~tissue).sum())
        tissue_seen += int(tissue.sum())
        counts = np.bincount(got[got != IGNORE], minlength=SYNTH_CLASSES.n_classes)
        assert rec["class_counts"] == counts.tolist()
    assert glass_seen > 1000 and tissue_seen > glass_seen
