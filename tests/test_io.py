import pytest

from magnipath._io import atomic_path, atomic_write_text


def test_atomic_dir_success_and_failure(tmp_path):
    final = tmp_path / "out"
    with atomic_path(final, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_path(final, is_dir=True) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp left, old kept
    assert not (final / "b.txt").exists()


def test_atomic_file_replaces(tmp_path):
    p = tmp_path / "x.json"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture
def umask_027():
    """Run with umask 027 (group may read, others nothing), then restore the old one."""
    import os

    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_results_get_the_umask_mode_not_tempfiles_private_one(tmp_path, umask_027):
    """A file: 0666 & ~027 = 0640; a folder: 0777 & ~027 = 0750 (not 0600 / 0700)."""
    import stat

    f = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    with atomic_path(tmp_path / "d", is_dir=True) as tmp:
        (tmp / "inner.txt").write_text("y")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "d" / "inner.txt").stat().st_mode) == 0o640


def test_discard_stale_temps_removes_only_that_files_leftovers(tmp_path):
    from magnipath._io import discard_stale_temps

    final = tmp_path / "progress.json"
    (tmp_path / ".progress.json.ab12.tmp").mkdir()
    (tmp_path / ".progress.json.ab12.tmp" / "progress.json").write_text("{")
    (tmp_path / ".progress.json.cd34.tmp").write_text("{")
    (tmp_path / ".other.json.ef56.tmp").mkdir()  # another file's: kept
    final.write_text("{}")
    assert discard_stale_temps(final) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.ef56.tmp", "progress.json"]
