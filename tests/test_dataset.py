import json
import multiprocessing
import pickle
import shutil

import numpy as np
import pytest

from magnipath.dataset import (
    DatasetError,
    assign_splits,
    open_dataset,
    resplit_dataset,
    split_counts,
)
from magnipath.geometry import TileGeometry
from magnipath.synth import SYNTH_CLASSES
from magnipath.tiling import SlideSource, TilingConfig, make_dataset


def test_split_never_splits_a_group_and_respects_ratios():
    groups = [f"patient-{i // 3}" for i in range(300)]      # 100 patients, 3 slides each
    out = assign_splits(groups, (70, 15, 15), seed=1)
    assert set(out) == set(groups)                           # one split per group
    n = {s: sum(v == s for v in out.values()) for s in ("train", "val", "test")}
    assert n == {"train": 70, "val": 15, "test": 15}
    out2 = assign_splits(groups, (0.6, 0.2, 0.2), seed=1)
    n2 = {s: sum(v == s for v in out2.values()) for s in ("train", "val", "test")}
    assert n2 == {"train": 60, "val": 20, "test": 20}


def test_split_deterministic_order_independent_seed_dependent():
    groups = [f"g{i}" for i in range(20)]
    a = assign_splits(groups, seed=5)
    assert a == assign_splits(list(reversed(groups)), seed=5)
    assert any(assign_splits(groups, seed=s) != a for s in range(1, 5))


@pytest.mark.parametrize(("n", "want"), [
    (0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)),
    (7, (5, 1, 1)), (10, (7, 2, 1)),
])
def test_split_counts_few_groups(n, want):
    assert split_counts(n, (0.7, 0.15, 0.15)) == want
    assert sum(want) == n


def test_split_counts_zero_ratio_stays_empty():
    assert split_counts(5, (0.8, 0.2, 0.0)) == (4, 1, 0)
    assert split_counts(3, (1, 0, 0)) == (3, 0, 0)


@pytest.mark.parametrize("ratios", [(1, 2), (0, 1, 1), (-1, 1, 1), (0, 0, 0)])
def test_bad_ratios(ratios):
    with pytest.raises(DatasetError, match="ratios"):
        assign_splits(["a"], ratios)


def test_open_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "magnipath-tiles",
                                                         "version": 99}))
    with pytest.raises(DatasetError, match="newer"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read"):
        open_dataset(tmp_path)


@pytest.fixture(scope="module")
def three_slides(synth_small, tmp_path_factory):
    """A DMMN dataset of three slide ids (the same file) in two groups."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    cfg = TilingConfig(geometry=TileGeometry.dmmn(0.5, 32), stride=320, split=(1, 1, 0),
                       seed=2)
    make_dataset([SlideSource(synth_small.slide, synth_small.partial, slide_id=s, group=g)
                  for s, g in (("a", "g1"), ("b", "g1"), ("c", "g2"))],
                 out, class_map=SYNTH_CLASSES, config=cfg)
    return out


def test_reader(three_slides):
    ds = open_dataset(three_slides)
    n = len(ds)
    assert n == ds.manifest["n_tiles"] == sum(s["n_tiles"] for s in ds.manifest["slides"])
    assert ds.images(0).shape == (3, 32, 32, 3) and ds.images(0).dtype == np.uint8
    assert ds.label(n - 1).shape == (32, 32) and ds.label(-1).dtype == np.uint8
    np.testing.assert_array_equal(ds.label(-1), ds.label(n - 1))
    with pytest.raises(IndexError):
        ds.images(n)
    assert ds.points(0) is None
    train, val, test = (ds.indices(s) for s in ("train", "val", "test"))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))
    assert len(test) == 0 and len(train) and len(val)
    splits = {r["slide_id"]: r["split"] for r in ds.records}
    assert splits["a"] == splits["b"] != splits["c"]          # group g1 stays together
    assert [r["index"] for r in ds.records] == list(range(n))
    np.testing.assert_array_equal(ds.class_pixel_counts(),
                                  ds.class_pixel_counts("train") + ds.class_pixel_counts("val"))
    with pytest.raises(DatasetError, match="unknown split"):
        ds.indices("validation")
    assert "n_tiles" in repr(ds)


def _first_label_sum(ds):
    return int(ds.label(0).astype(np.int64).sum())


def test_reader_in_worker_processes(three_slides):
    ds = open_dataset(three_slides)
    want = _first_label_sum(ds)           # arrays opened in this process first
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(1) as pool:
            assert pool.apply(_first_label_sum, (ds,)) == want
    assert pickle.loads(pickle.dumps(ds)).records == ds.records


def test_manifest_is_authoritative_and_damage_is_reported(three_slides, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(three_slides, copy)
    lines = (copy / "tiles.jsonl").read_text().splitlines()
    bogus = [json.dumps({**json.loads(ln), "split": "test"}) for ln in lines]
    (copy / "tiles.jsonl").write_text("\n".join(bogus) + "\n")
    ds = open_dataset(copy)
    assert len(ds.indices("test")) == 0
    (copy / "tiles.jsonl").write_text("\n".join(bogus[:-1]) + "\n")
    with pytest.raises(DatasetError, match="damaged"):
        open_dataset(copy)


def test_resplit_in_place(three_slides, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(three_slides, copy)
    before = open_dataset(copy)
    out = resplit_dataset(copy, (1, 0, 1), seed=0)
    after = open_dataset(copy)
    assert set(out["groups"].values()) == {"train", "test"}
    assert len(after.indices("val")) == 0
    assert {r["split"] for r in after.records if r["group"] == "g1"} == {out["groups"]["g1"]}
    assert after.manifest["dataset_id"] != before.manifest["dataset_id"]
    assert after.manifest["resplit_from"] == before.manifest["dataset_id"]
    np.testing.assert_array_equal(after.images(1), before.images(1))
    with pytest.raises(DatasetError, match="ratios"):
        resplit_dataset(copy, (0, 1, 1))
