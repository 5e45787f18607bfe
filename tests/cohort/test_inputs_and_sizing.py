"""Cohort inputs (folder, CSV manifest, list) and the sizing of the embedded cluster."""

from __future__ import annotations

import pytest

from magnipath.cohort import CohortError, collect, parse_gpus, plan_cluster


def test_folder_is_searched_recursively_and_sorted(cohort_dir, tmp_path):
    slides = collect(cohort_dir)
    assert [s.name for s in slides] == ["a", "b", "c"]
    assert slides[2].path == cohort_dir / "sub" / "c.tif"
    with pytest.raises(CohortError, match="holds no slide file"):
        collect(tmp_path)


def test_csv_manifest(cohort_dir, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(f"slide,mpp,group\n{cohort_dir / 'a.tif'},0.25,p1\n"
                 f"{cohort_dir / 'b.tif'},,\n")
    a, b = collect(m)
    assert (a.mpp, a.mpp_source, a.group) == (0.25, "manifest", "p1")
    assert (b.mpp, b.group) == (None, None)
    m.write_text(f"slide,mpp\n{cohort_dir / 'a.tif'},fast\n")
    with pytest.raises(CohortError, match=r"line 2: mpp 'fast'"):
        collect(m)
    m.write_text("path,mpp\nx.tif,1\n")
    with pytest.raises(CohortError, match="slide,mpp,group"):
        collect(m)
    m.write_text("slide\nmissing.tif\n")
    with pytest.raises(CohortError, match=r"missing\.tif not found"):
        collect(m)


def test_two_slides_with_one_name_are_refused(cohort_dir, tmp_path):
    (tmp_path / "x").mkdir()
    other = tmp_path / "x" / "a.tif"
    other.write_bytes((cohort_dir / "a.tif").read_bytes())
    with pytest.raises(CohortError, match="same name 'a'"):
        collect([cohort_dir / "a.tif", other])


@pytest.mark.parametrize("cores", [1, 2, 3, 16, 64])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_embedded_cluster_never_oversubscribes(cores, n):
    plan = plan_cluster(n, cores=cores)
    assert 1 <= plan.workers <= min(cores, n)
    assert plan.workers * plan.torch_threads <= max(cores, plan.workers)
    assert plan.address is None and not plan.uses_gpu


def test_gpus_and_scheduler(monkeypatch):
    assert parse_gpus("0,1") == [0, 1] and parse_gpus(None) == []
    with pytest.raises(CohortError, match="--gpus"):
        parse_gpus("0,0")
    plan = plan_cluster(10, gpus="0,1", cores=16)
    assert plan.workers == 2 and plan.gpus == (0, 1) and plan.torch_threads == 8
    monkeypatch.setenv("MAGNIPATH_SCHEDULER", "tcp://example:8786")
    plan = plan_cluster(10, gpus="all")
    assert plan.address == "tcp://example:8786" and plan.uses_gpu
