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
