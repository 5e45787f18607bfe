"""Kill-safety of QuPath data files: validator, repair, validated backups, atomic replace, CLI.

Data files are real Java serialisation streams: written by tests/qupath_bridge/_jstream.py
(QuPath's .qpdata layout), by a real JVM where ``javac`` is installed, and by the
QuPath test double (tests marked ``qupath``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _jstream import make_objects, qpdata_bytes, read_qpdata_objects, write_qpdata

from magnipath.cli import main
from qupath_bridge import _atomic, _backups, _repair
from qupath_bridge._integrity import (
    BKP_FILE,
    DATA_FILE,
    IntegrityError,
    check_data_file,
    check_image_dir,
    check_project,
)
from qupath_bridge._javaser import StreamError, scan
from qupath_bridge.errors import QuPathBridgeError

HERE = Path(__file__).resolve().parent


def _project(tmp_path: Path, n_images: int = 2, n_user: int = 20) -> Path:
    """A QuPath project folder on disk (project.qpproj + data/<id>/data.qpdata), no QuPath."""
    folder = tmp_path / "project"
    images = []
    for i in range(1, n_images + 1):
        images.append({"entryID": i, "imageName": f"slide {i}.tif"})
        d = folder / "data" / str(i)
        d.mkdir(parents=True)
        write_qpdata(d / DATA_FILE, make_objects(n_user, prefix=f"user{i}"))
        (d / "server.json").write_text("{}", encoding="utf-8")
    (folder / "project.qpproj").write_text(json.dumps({"version": "0.6.0", "images": images}),
                                           encoding="utf-8")
    return folder / "project.qpproj"


def _interrupted_save(data_dir: Path, new_objects: list[dict], keep: int) -> bytes:
    """What a kill during QuPath's saveImageData leaves: data -> .bkp, new file cut at ``keep``."""
    old = (data_dir / DATA_FILE).read_bytes()
    os.replace(data_dir / DATA_FILE, data_dir / BKP_FILE)
    (data_dir / DATA_FILE).write_bytes(qpdata_bytes(new_objects)[:keep])
    return old


# -- the validator ----------------------------------------------------------------------------
def test_every_truncation_is_rejected_and_the_whole_file_accepted(tmp_path):
    data = qpdata_bytes(make_objects(2) + make_objects(1, "pred", marked=True))
    f = tmp_path / DATA_FILE
    f.write_bytes(data)
    whole = check_data_file(f)
    assert whole.ok and whole.size == len(data) and whole.n_objects > 3
    accepted = []
    for k in range(len(data)):
        f.write_bytes(data[:k])
        for full in (True, False):
            if check_data_file(f, full=full).ok:
                accepted.append((k, full))
    assert accepted == []


def test_empty_missing_and_foreign_files(tmp_path):
    f = tmp_path / DATA_FILE
    assert check_data_file(f).reason == "the file does not exist"
    f.write_bytes(b"")
    c = check_data_file(f)
    assert not c.ok and "empty" in c.reason
    f.write_bytes(b"PK\x03\x04 not java")
    assert "not a QuPath data file" in check_data_file(f).reason
    # a complete Java stream that is not QuPath's layout: no hierarchy
    data = qpdata_bytes([]).replace(b"qupath.lib.objects.hierarchy.PathObjectHierarchy",
                                    b"qupath.lib.objects.hierarchy.PathObjectHierarchX")
    f.write_bytes(data)
    assert "no object hierarchy" in check_data_file(f).reason


def test_scan_rejects_bogus_lengths_without_allocating():
    # a TC_LONGSTRING claiming 2**60 bytes, a huge array: errors at once, not memory
    with pytest.raises(StreamError, match="ends early") as e:
        scan(b"\xac\xed\x00\x05\x7c" + (2**60).to_bytes(8, "big") + b"x")
    assert e.value.truncated
    with pytest.raises(StreamError, match="reference to handle"):
        scan(b"\xac\xed\x00\x05\x71\x00\x7e\x00\x05")
    with pytest.raises(StreamError, match="unknown type code"):
        scan(b"\xac\xed\x00\x05\x42")


JAVA = textwrap.dedent("""
    package qupath.lib.objects.hierarchy;
    import java.io.*;
    import java.util.*;
    public class PathObjectHierarchy implements Serializable {
        private static final long serialVersionUID = 1L;
        enum ImageType { BRIGHTFIELD_H_E }
        public static class Obj implements Externalizable {
            String name; double[] xy = {1.5, 2.5, 3.5}; List<Obj> children = new ArrayList<>();
            Map<String, String> meta = new LinkedHashMap<>();
            public Obj() {}
            Obj(String n) { name = n; }
            public void writeExternal(ObjectOutput out) throws IOException {
                out.writeInt(2); out.writeObject(name); out.writeObject(xy);
                out.writeObject(new UUID(7L, 9L)); out.writeObject(meta);
                out.writeInt(children.size()); for (Obj c : children) out.writeObject(c);
            }
            public void readExternal(ObjectInput in) {}
        }
        Obj root = new Obj("root"); int[] counts = {1, 2}; float f = 1.5f; transient Object t;
        public static void main(String[] a) throws Exception {
            try (ObjectOutputStream out = new ObjectOutputStream(
                    new BufferedOutputStream(new FileOutputStream(a[0])))) {
                out.writeUTF("Data file version 3");
                out.writeObject("x".repeat(70000));
                out.writeObject(Locale.getDefault(Locale.Category.FORMAT));
                out.writeObject(ImageType.BRIGHTFIELD_H_E);
                out.writeObject(null);
                out.writeObject(new ArrayList<>(List.of("step")));
                PathObjectHierarchy h = new PathObjectHierarchy();
                for (int i = 0; i < 300; i++) {
                    Obj o = new Obj("o" + i); o.meta.put("magnipath", "prediction");
                    o.children.add(new Obj("c")); h.root.children.add(o);
                }
                out.writeObject(h);
                Map<String, Object> m = new HashMap<>(); m.put("PROJECT_ENTRY_ID", "p/1");
                m.put("n", 3); m.put("d", 2.5);
                out.writeObject(m);
                out.writeObject("EOF");
            }
        }
    }
""")


@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac) on PATH")
def test_streams_written_by_a_real_jvm(tmp_path):
    """A .qpdata-shaped stream from ObjectOutputStream: accepted whole, every cut rejected."""
    src = tmp_path / "qupath" / "lib" / "objects" / "hierarchy"
    src.mkdir(parents=True)
    (src / "PathObjectHierarchy.java").write_text(JAVA, encoding="utf-8")
    subprocess.run(["javac", "-d", str(tmp_path / "classes"),
                    str(src / "PathObjectHierarchy.java")], check=True, timeout=120)
    out = tmp_path / DATA_FILE
    subprocess.run(["java", "-cp", str(tmp_path / "classes"),
                    "qupath.lib.objects.hierarchy.PathObjectHierarchy", str(out)],
                   check=True, timeout=120)
    data = out.read_bytes()
    whole = check_data_file(out)
    assert whole.ok, whole.reason
    kinds = [(it.kind, it.name) for it in scan(data).items]
    assert kinds[2] == ("object", "java.util.Locale") and kinds[-1] == ("string", "EOF")
    cut = tmp_path / "cut.qpdata"
    step = max(1, len(data) // 400)
    for k in [*range(0, len(data), step), *range(len(data) - 64, len(data))]:
        cut.write_bytes(data[:k])
        assert not check_data_file(cut).ok, k


# -- repair -----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("keep", [0, 1, 40, -7])
def test_repair_restores_the_bkp_exactly(tmp_path, keep):
    """Truncated / 0-byte data.qpdata beside a .bkp: detected, repaired byte for byte."""
    pf = _project(tmp_path)
    d = pf.parent / "data" / "1"
    n = len(qpdata_bytes(make_objects(25, "new")))
    old = _interrupted_save(d, make_objects(25, "new"), keep % n)
    states = check_project(pf)
    assert states["1"][1].status == "broken" and states["2"][1].status == "ok"
    assert states["1"][1].bkp is not None and states["1"][1].bkp.ok
    dry = _repair.repair_project(pf, dry_run=True)
    assert [r["action"] for r in dry] == ["would restore", "none"]
    assert not check_data_file(d / DATA_FILE).ok  # a dry run changes nothing
    res = _repair.repair_project(pf)
    assert [r["action"] for r in res] == ["restored", "none"]
    assert res[0]["source"] == BKP_FILE
    assert (d / DATA_FILE).read_bytes() == old
    assert read_qpdata_objects(d / DATA_FILE) == make_objects(20, prefix="user1")
    kept = _backups.list_backups(pf.parent, "1")
    assert len(kept) == 1 and not kept[0].good and kept[0].reason.startswith("broken state")
    assert _backups.newest_good(pf.parent, "1") is None  # a broken state is never "good"
    assert _repair.repair_project(pf)[0]["action"] == "none"  # idempotent


def test_repair_missing_data_beside_bkp_and_from_magnipath_backup(tmp_path):
    pf = _project(tmp_path)
    d1, d2 = pf.parent / "data" / "1", pf.parent / "data" / "2"
    old1 = (d1 / DATA_FILE).read_bytes()
    os.replace(d1 / DATA_FILE, d1 / BKP_FILE)  # killed between QuPath's rename and its write
    assert check_image_dir(d1).status == "broken"
    # image 2: a good MagniPath backup, then a truncated file and a truncated .bkp
    good = _backups.make_backup(d2, pf.parent, "2", reason="before import", image="slide 2.tif")
    assert good.good and good.validation["ok"]
    old2 = (d2 / DATA_FILE).read_bytes()
    (d2 / DATA_FILE).write_bytes(old2[:100])
    (d2 / BKP_FILE).write_bytes(old2[:50])
    res = {r["image"]: r for r in _repair.repair_project(pf)}
    assert res["slide 1.tif"]["source"] == BKP_FILE
    assert res["slide 2.tif"]["source"] == f"MagniPath backup {good.id}"
    assert (d1 / DATA_FILE).read_bytes() == old1 and (d2 / DATA_FILE).read_bytes() == old2
    assert not (d2 / BKP_FILE).exists()


def test_repair_without_a_good_version_changes_nothing(tmp_path):
    pf = _project(tmp_path, n_images=1)
    d = pf.parent / "data" / "1"
    (d / DATA_FILE).write_bytes(b"")
    with pytest.raises(IntegrityError, match="no good version"):
        _repair.repair_image(pf.parent, "1", "slide 1.tif")
    assert (d / DATA_FILE).read_bytes() == b""
    res = _repair.repair_project(pf)
    assert res[0]["action"] == "cannot repair" and "slide 1.tif" in res[0]["error"]


# -- backups ----------------------------------------------------------------------------------
def test_backups_validated_recorded_pruned(tmp_path):
    pf = _project(tmp_path, n_images=1)
    d = pf.parent / "data" / "1"
    made = [_backups.make_backup(d, pf.parent, "1", reason=f"write {i}") for i in range(7)]
    listed = _backups.list_backups(pf.parent, "1")
    assert [b.id for b in listed] == [b.id for b in made[-_backups.KEEP_GOOD:]]
    rec = json.loads((listed[-1].path / _backups.RECORD).read_text())
    assert rec["good"] is True and rec["validation"]["ok"] is True and rec["reason"] == "write 6"
    (d / DATA_FILE).write_bytes((d / DATA_FILE).read_bytes()[:-3])
    with pytest.raises(QuPathBridgeError, match="takes no backup"):
        _backups.make_backup(d, pf.parent, "1", reason="x")
    for _ in range(3):
        _backups.make_backup(d, pf.parent, "1", reason="kept", require_good=False)
    listed = _backups.list_backups(pf.parent, "1")
    assert sum(not b.good for b in listed) == _backups.KEEP_BAD
    assert sum(b.good for b in listed) == _backups.KEEP_GOOD
    # the size cap drops the oldest good ones but never the newest good one
    dropped = _backups.prune_backups(pf.parent, "1", max_bytes=1)
    left = _backups.list_backups(pf.parent, "1")
    assert [b.good for b in left] == [True] and left[0].id == made[-1].id and dropped
    # a backup of an earlier MagniPath (no record) is validated when listed
    old = _backups.backups_dir(pf.parent, "1") / "20200101-000000-000000"
    shutil.copytree(made[-1].path, old)
    (old / _backups.RECORD).unlink()
    legacy = _backups.list_backups(pf.parent, "1")[0]
    assert legacy.id == old.name and legacy.good and not legacy.recorded


def test_atomic_replace_keeps_the_old_file_until_the_rename(tmp_path):
    d = tmp_path / "data" / "1"
    d.mkdir(parents=True)
    write_qpdata(d / DATA_FILE, make_objects(3))
    old = (d / DATA_FILE).read_bytes()

    def bad_write(p):
        p.write_bytes(qpdata_bytes(make_objects(5))[:-1])

    with pytest.raises(IntegrityError, match="does not validate"):
        _atomic.replace_data_file(d, bad_write)
    assert (d / DATA_FILE).read_bytes() == old and sorted(os.listdir(d)) == [DATA_FILE]

    def verify(p):
        raise IntegrityError("user objects differ")

    with pytest.raises(IntegrityError, match="differ"):
        _atomic.replace_data_file(d, lambda p: write_qpdata(p, make_objects(5)), verify=verify)
    assert (d / DATA_FILE).read_bytes() == old and sorted(os.listdir(d)) == [DATA_FILE]
    check = _atomic.replace_data_file(d, lambda p: write_qpdata(p, make_objects(5)))
    assert check.ok and read_qpdata_objects(d / DATA_FILE) == make_objects(5)
    assert sorted(os.listdir(d)) == [DATA_FILE]


# -- command line (no QuPath needed) ------------------------------------------------------------
def test_cli_repair_backups_restore(tmp_path, capsys):
    pf = _project(tmp_path)
    d = pf.parent / "data" / "1"
    first = (d / DATA_FILE).read_bytes()
    b1 = _backups.make_backup(d, pf.parent, "1", reason="before import")
    _atomic.replace_data_file(d, lambda p: write_qpdata(p, make_objects(4, "v2")))
    second = (d / DATA_FILE).read_bytes()
    _interrupted_save(d, make_objects(9, "v3"), 333)

    assert main(["qupath", "repair", str(pf), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["broken"] == ["slide 1.tif"] and out["repaired"] == ["slide 1.tif"]
    assert (d / DATA_FILE).read_bytes() == second

    assert main(["qupath", "backups", str(pf), "--image", "slide 1.tif", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    bs = out["images"][0]["backups"]
    assert [b["good"] for b in bs] == [True, False] and out["images"][0]["newest_good"] == b1.id

    assert main(["qupath", "restore", str(pf), "--image", "slide 1.tif", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["restored"] == b1.id and out["previous_state_good"] is True
    assert (d / DATA_FILE).read_bytes() == first
    # undo: the state before the restore is now the newest good backup
    assert main(["qupath", "restore", str(pf), "--image", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert (d / DATA_FILE).read_bytes() == second
    assert main(["qupath", "restore", str(pf), "--image", "0", "--backup", "nope"]) == 1
    assert "has no backup 'nope'" in capsys.readouterr().err
    assert main(["qupath", "repair", str(tmp_path / "nowhere")]) == 1
    assert "no QuPath project" in capsys.readouterr().err


# -- through the bridge, against the QuPath double (and real QuPath where installed) -------------
@pytest.mark.qupath
@pytest.mark.timeout(120)
def test_broken_image_is_reported_and_repaired_before_a_write(qupath_flavour, tmp_path,
                                                              make_slide, capsys):
    from shapely.geometry import box

    from qupath_bridge.geojson import write_geojson
    from qupath_bridge.objects import QuPathObject
    from qupath_bridge.project import MARK_KEY, Project, create_project

    users = [QuPathObject(box(5, 5, 50, 50), classification="Tumor", name="U1")]
    ann = write_geojson(users, tmp_path / "a.geojson")
    pf = create_project(tmp_path / "project", [make_slide("a.ome.tif", 512, 384, 0.5)], [ann])
    preds = [QuPathObject(box(60, 60, 90, 90), classification="Tumor", name=f"p{i}")
             for i in range(3)]
    write_geojson(preds[:1], tmp_path / "p1.geojson")
    with Project(pf, "r+") as p:
        p.write_predictions(0, preds)
        data_dir = Path(str(p._entry(0).entry_path))
    good = (data_dir / DATA_FILE).read_bytes()
    # a kill during QuPath's own save of this image (e.g. the user's QuPath)
    os.replace(data_dir / DATA_FILE, data_dir / BKP_FILE)
    (data_dir / DATA_FILE).write_bytes(good[: len(good) // 2])
    with Project(pf, "r") as p:
        damaged = p.damaged_images
        assert [d["image"] for d in damaged] == ["a.ome.tif"]
        assert "magnipath qupath repair" in damaged[0]["message"]
        with pytest.raises(IntegrityError, match=r"Image 'a.ome.tif' .* cannot be used"):
            p.read_objects(0)
    capsys.readouterr()
    assert main(["qupath", "list", str(pf), "--json"]) == 0  # listing reads no hierarchy
    for argv in (["qupath", "export", str(pf), "--out", str(tmp_path / "out")],
                 ["tile", "--qupath-project", str(pf), "--out", str(tmp_path / "tiles"),
                  "--quiet"]):
        assert main(argv) == 1, argv  # one paragraph naming the image, within seconds
        assert "'a.ome.tif'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "tiles").exists()
    assert main(["qupath", "import", str(pf), str(tmp_path / "p1.geojson"), "--image", "0",
                 "--json"]) == 0  # a write repairs first, then writes atomically
    res = json.loads(capsys.readouterr().out)
    assert res["removed"] == 3 and res["added"] == 1
    with Project(pf, "r") as p:
        objs = p.read_objects(0)
    assert {o.name for o in objs if MARK_KEY not in o.metadata} == {"U1"}
    assert check_image_dir(data_dir).status == "ok"
    assert not list(data_dir.glob(".*")) and not (pf.parent / "magnipath" / "tmp").exists()
    kept = [b for b in _backups.list_backups(pf.parent, _entry_id(pf)) if not b.good]
    assert len(kept) == 1  # the broken state, kept for inspection


def _entry_id(pf: Path) -> str:
    return str(json.loads(pf.read_text())["images"][0]["entryID"])


def test_no_bridge_module_imports_paquo_at_import_time():
    code = ("import sys, qupath_bridge._repair, qupath_bridge._safe_write, qupath_bridge._jvm;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paquo', 'jpype')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_run_folder_inside_the_project_and_stale_ones_removed(tmp_path, monkeypatch):
    import socket
    import tempfile
    import time

    from qupath_bridge import _rundir

    proj = tmp_path / "project"
    root = _rundir.tmp_root(proj)
    root.mkdir(parents=True)
    dead = root / "run-999999999-1"  # a killed run on this machine (no such process)
    dead.mkdir()
    (dead / ".host").write_text(socket.gethostname())
    live = root / f"run-{os.getpid()}-2"  # a running one
    live.mkdir()
    (live / ".host").write_text(socket.gethostname())
    old = root / "run-1-3"  # another machine's, two days old
    old.mkdir()
    two_days = time.time() - 2 * 86400
    os.utime(old, (two_days, two_days))
    sysdir = tmp_path / "systemp"
    sysdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sysdir))
    legacy_old, legacy_new = sysdir / "magnipath-qupath-a", sysdir / "magnipath-qupath-b"
    legacy_old.mkdir()
    legacy_new.mkdir()
    os.utime(legacy_old, (two_days, two_days))
    with _rundir.run_dir(proj) as d:
        assert d.parent == root and d.is_dir()
        (d / "objects.geojson").write_text("{}")
    assert not d.exists() and not dead.exists() and not old.exists() and live.exists()
    assert not legacy_old.exists() and legacy_new.exists()
