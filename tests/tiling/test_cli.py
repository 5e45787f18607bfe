"""``magnipath tile`` and ``magnipath split`` end to end."""

import json

import numpy as np
import pytest

from magnipath.cli import build_parser, main
from magnipath.dataset import open_dataset
from magnipath.slide import open_slide


def run(capsys, *args):
    rc = main([*map(str, args), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out) if "--json" in args else out


def test_help_states_units():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["tile"].format_help().split())
    for phrase in ("target pixels", "µm per pixel", "level-0 pixels", "NAME.geojson",
                   "0.5 = the TLS paper", "(0-1", "--mpp-override"):
        assert phrase in text, phrase
    assert "groups" in sub.choices["split"].format_help()


def test_tile_dmmn_with_auto_annotations(tmp_path, synth_small, capsys):
    # synth writes NAME.geojson next to NAME.tif: found without --annotations
    s = run(capsys, "tile", synth_small.slide, "--out", tmp_path / "ds", "--dmmn", "--size", 32,
            "--stride", 96, "--min-labelled", 0.01, "--json")
    ds = open_dataset(tmp_path / "ds")
    assert s["n_tiles"] == len(ds) > 0 and s["class_map_derived"]
    assert ds.manifest["slides"][0]["annotations"] == str(synth_small.truth.resolve())
    assert [i.magnification for i in ds.geometry.inputs] == [20.0, 10.0, 5.0]
    assert ds.images(0).shape == (3, 32, 32, 3)
    assert all(r["labelled"] > 0.01 for r in ds.records)


def test_tile_context_overlap_points(tmp_path, synth_small, capsys):
    s = run(capsys, "tile", synth_small.slide, "--out", tmp_path / "ds", "--magnification", 5,
            "--context", "2.5,1.25", "--size", 64, "--overlap", 0.5, "--points",
            synth_small.mitoses, "--point-class", "Mitosis", "--classes",
            "Background=0,Stroma=1,Carcinoma=2,Benign=3,TLS=4,Necrosis=5,Adipose=6", "--json")
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["stride"] == 32 and not s["class_map_derived"]
    assert [round(i.mpp, 6) for i in ds.geometry.inputs] == [2.0, 4.0, 8.0]
    assert ds.points(0).dtype == np.float32 and ds.has_points
    xs = sorted({r["box"][0] for r in ds.records})
    assert np.diff(xs).min() == 256   # 32 target px at 5x = 256 level-0 px
    with open_slide(synth_small.slide) as slide:
        rec = ds.records[len(ds) // 2]
        x, y, w, _ = rec["box"]
        ref = slide.read_region((x + w / 2 - 1024, y + w / 2 - 1024, 2048, 2048), mpp=8.0,
                                out_shape=(64, 64))
    np.testing.assert_array_equal(ds.images(len(ds) // 2)[2], ref)


@pytest.fixture
def four_patients(tmp_path, synth_small):
    """Six names for the synthetic slide (symlinks): patients p1 (3 slides), p2, p3, p4."""
    paths = []
    for name in ("a", "b", "c", "d", "e", "f"):
        p = tmp_path / f"{name}.tif"
        p.symlink_to(synth_small.slide)
        paths.append(p)
    csv = tmp_path / "groups.csv"
    csv.write_text("slide,group\na,p1\nb,p1\nc,p1\nd,p2\n")
    return paths, csv


def test_groups_and_resplit(tmp_path, synth_small, four_patients, capsys):
    paths, csv = four_patients
    s = run(capsys, "tile", *paths, "--out", tmp_path / "ds", "--annotations",
            *[synth_small.partial] * 6, "--magnification", 2.5, "--size", 64, "--groups", csv,
            "--group", "e=p3", "--group", "f.tif=p4", "--split", "50,25,25", "--seed", 3,
            "--json")
    ds = open_dataset(tmp_path / "ds")
    groups = {sl["slide_id"]: sl["group"] for sl in ds.manifest["slides"]}
    assert groups == {"a": "p1", "b": "p1", "c": "p1", "d": "p2", "e": "p3", "f": "p4"}
    assert sorted(s["groups"].values()) == ["test", "train", "train", "val"]

    def check(ds):
        by_group = {}
        for r in ds.records:
            by_group.setdefault(r["group"], set()).add(r["split"])
        assert all(len(v) == 1 for v in by_group.values())   # a patient is never split
        for split in ("train", "val", "test"):
            idx = ds.indices(split)
            assert all(ds.records[i]["split"] == split for i in idx)
            total = sum(np.bincount(ds.label(i).ravel(), minlength=256)[:7] for i in idx)
            np.testing.assert_array_equal(ds.class_pixel_counts(split), total)
            assert ds.manifest["class_pixel_counts"][split] == list(np.asarray(total).tolist())
        return {g: s.pop() for g, s in by_group.items()}

    first = check(ds)
    images_before = ds.images(3)
    moved = None
    for seed in range(20):
        out = run(capsys, "split", tmp_path / "ds", "--ratios", "50,25,25", "--seed", seed,
                  "--json")
        ds2 = open_dataset(tmp_path / "ds")
        assert check(ds2) == out["groups"]
        if out["groups"] != first:
            moved = ds2
            break
    assert moved is not None, "no seed changed the assignment"
    np.testing.assert_array_equal(moved.images(3), images_before)
    assert moved.manifest["split"]["seed"] == seed
    assert not list((tmp_path / "ds").glob(".*.tmp"))
