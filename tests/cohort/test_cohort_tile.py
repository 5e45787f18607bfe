"""``magnipath tile --cohort``: per-slide shards merged into the dataset one run would make."""

from __future__ import annotations

import json

import numpy as np

from magnipath.cli import main
from magnipath.cohort import parts_folder
from magnipath.dataset import open_dataset

TILE = ["--magnification", "10", "--size", "64", "--split", "50,50,0", "--seed", "3"]


def test_tile_cohort_equals_one_tile_run_with_the_exact_patient_split(cohort_dir, tmp_path,
                                                                      capsys):
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("slide,mpp,group\n"
                        f"{cohort_dir / 'a.tif'},,p1\n{cohort_dir / 'b.tif'},,p2\n"
                        f"{cohort_dir / 'sub' / 'c.tif'},,p1\n")
    one = tmp_path / "one"
    assert main(["tile", str(cohort_dir / "a.tif"), str(cohort_dir / "b.tif"),
                 str(cohort_dir / "sub" / "c.tif"), "--out", str(one), "--group", "a=p1",
                 "--group", "b=p2", "--group", "c=p1", *TILE, "--quiet"]) == 0
    capsys.readouterr()
    many = tmp_path / "many"
    code = main(["tile", "--cohort", str(manifest), "--out", str(many), *TILE,
                 "--workers", "2", "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["cohort"]["done"] == 3
    a, b = open_dataset(one), open_dataset(many)
    split = {s["slide_id"]: s["split"] for s in b.manifest["slides"]}
    assert split == {s["slide_id"]: s["split"] for s in a.manifest["slides"]}
    assert split["a"] == split["c"] != split["b"]  # patients stay whole
    assert len(a) == len(b) > 0 and a.records == b.records
    for i in range(len(a)):
        assert np.array_equal(a.images(i), b.images(i)) and np.array_equal(a.label(i),
                                                                           b.label(i))
    assert a.manifest["class_pixel_counts"] == b.manifest["class_pixel_counts"]
    assert a.manifest["class_map"] == b.manifest["class_map"]
    for k in ("train", "val"):
        assert np.array_equal(a.indices(k), b.indices(k))
    # a second run reuses every shard
    assert main(["tile", "--cohort", str(manifest), "--out", str(many), *TILE,
                 "--workers", "1", "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cohort"]["ran"] == 0 and again["n_tiles"] == len(a)
    assert (parts_folder(many) / "cohort.json").is_file()
