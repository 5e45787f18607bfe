"""Kill a MagniPath write at many instants: the image is always whole, old or new.

The child process (_kill_child.py) runs one write; the test sends SIGKILL (or
SIGINT/SIGTERM) at random instants after the child says ``ready`` (seeded), then
checks: the data file validates without any repair, the user's objects are
identical, predictions are all-or-nothing, the newest good backup gives back the
state before the write, and nothing was left in the cwd or the temp folder.
A few kills run by default; ``-m slow`` runs the long loop.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _jstream import make_objects, read_qpdata_objects, write_qpdata

from qupath_bridge import _backups, _repair
from qupath_bridge._integrity import DATA_FILE, check_image_dir

CHILD = Path(__file__).resolve().parent / "_kill_child.py"
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
            "OMP_NUM_THREADS": "1"}


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    cwd.mkdir(exist_ok=True)
    p = subprocess.Popen([sys.executable, str(CHILD), *args], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "ready", (line, p.stderr.read() if p.poll() is not None else "")
    return p, time.perf_counter()


def _finish(p: subprocess.Popen, t0: float) -> float:
    assert p.stdout.readline().strip() == "done", p.stderr.read()
    dt = time.perf_counter() - t0
    p.wait(timeout=60)
    return dt


def _kill_after(p: subprocess.Popen, delay: float, sig: int = signal.SIGKILL) -> int:
    time.sleep(delay)
    p.send_signal(sig)
    rc = p.wait(timeout=60)
    p.stdout.close()
    p.stderr.close()
    return rc


# -- the atomic replace alone: a slow writer, many kills, no QuPath --------------------------
def _atomic_loop(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    d = tmp_path / "data" / "1"
    d.mkdir(parents=True)
    old_objs, n_new = make_objects(20), 150
    new_objs = make_objects(n_new, prefix="new")
    write_qpdata(d / DATA_FILE, old_objs)
    old = (d / DATA_FILE).read_bytes()
    cwd, env = tmp_path / "cwd", _env(tmp_path / "tmp")
    p, t0 = _start(["atomic", str(d), str(n_new)], cwd, env)
    duration = _finish(p, t0)  # one undisturbed write: how long the window is
    assert read_qpdata_objects(d / DATA_FILE) == new_objs
    rng = random.Random(seed)
    seen = {"old": 0, "new": 0, "staged_left": 0}
    for _ in range(trials):
        (d / DATA_FILE).write_bytes(old)
        p, _t = _start(["atomic", str(d), str(n_new)], cwd, env)
        _kill_after(p, rng.uniform(0, 1.3 * duration))
        state = check_image_dir(d)
        assert state.status == "ok", state.data.reason  # whole, without any repair
        objs = read_qpdata_objects(d / DATA_FILE)
        assert objs in (old_objs, new_objs)
        seen["old" if objs == old_objs else "new"] += 1
        staged = [f for f in os.listdir(d) if f.startswith(".")]
        seen["staged_left"] += bool(staged)  # killed while writing: hidden, removed next time
    assert os.listdir(cwd) == [] and os.listdir(tmp_path / "tmp") == []
    return seen


def test_kill_loop_atomic_replace(tmp_path):
    seen = _atomic_loop(tmp_path, trials=12, seed=17)
    assert seen["old"] + seen["new"] == 12
    assert seen["staged_left"] >= 1  # some kills landed in the middle of the write


@pytest.mark.slow
def test_kill_loop_atomic_replace_long(tmp_path):
    seen = _atomic_loop(tmp_path, trials=150, seed=1717)
    print("kill-loop atomic, 150 SIGKILLs, seed 1717:", seen)
    assert seen["old"] >= 10 and seen["new"] >= 10 and seen["staged_left"] >= 10


# -- the whole bridge write (Project.write_predictions) against the QuPath double ---------------
def _bridge_project(tmp_path: Path, make_slide, n: int) -> tuple[Path, list[Path]]:
    from shapely.geometry import box

    from qupath_bridge.geojson import write_geojson
    from qupath_bridge.objects import QuPathObject
    from qupath_bridge.project import create_project

    users = [QuPathObject(box(5 + i, 5, 50 + i, 50), classification="Tumor", name=f"U{i}")
             for i in range(3)]
    ann = write_geojson(users, tmp_path / "users.geojson")
    pf = create_project(tmp_path / "project", [make_slide("a.ome.tif", 512, 384, 0.5)], [ann])
    sets = []
    for tag, k in (("A", n), ("B", n + 20)):
        preds = [QuPathObject(box(60 + i % 400, 60 + i // 400, 61 + i % 400, 61 + i // 400),
                              classification="Stroma", name=f"{tag}{i}") for i in range(k)]
        sets.append(write_geojson(preds, tmp_path / f"preds{tag}.geojson"))
    return pf, sets


def _state(pf: Path) -> tuple[set, set]:
    from qupath_bridge.project import MARK_KEY, Project

    with Project(pf, "r") as p:
        objs = p.read_objects(0, types=("annotation", "detection"))
    users = {(o.name, o.geometry.wkt) for o in objs if MARK_KEY not in o.metadata}
    return users, {o.name for o in objs if MARK_KEY in o.metadata}


def _bridge_loop(tmp_path: Path, make_slide, flavour: str, trials: int, seed: int,
                 n: int, spread: float = 1.2) -> dict:
    pf, sets = _bridge_project(tmp_path, make_slide, n)
    eid = str(json.loads(pf.read_text())["images"][0]["entryID"])
    data = pf.parent / "data" / eid / DATA_FILE
    users, _ = _state(pf)
    names = [{f"{t}{i}" for i in range(k)} for t, k in (("A", n), ("B", n + 20))]
    cwd, env = tmp_path / "cwd", _env(tmp_path / "tmp")
    p, t0 = _start(["bridge", str(pf), flavour, str(sets[0])], cwd, env)
    duration = _finish(p, t0)
    assert _state(pf) == (users, names[0])
    rng = random.Random(seed)
    seen = {"old": 0, "new": 0, "restored": 0}
    for k in range(trials):
        before_bytes, (_, before_preds) = data.read_bytes(), _state(pf)
        ids = {b.id for b in _backups.list_backups(pf.parent, eid)}
        target = (k + 1) % 2
        p, _t = _start(["bridge", str(pf), flavour, str(sets[target])], cwd, env)
        _kill_after(p, rng.uniform(0, spread * duration))
        assert check_image_dir(data.parent).status == "ok"  # no repair needed, ever
        got_users, preds = _state(pf)  # every reader returns (validated first)
        assert got_users == users
        assert preds in (before_preds, names[target])  # all or nothing
        seen["old" if preds == before_preds else "new"] += 1
        if {b.id for b in _backups.list_backups(pf.parent, eid)} - ids:  # (pruning keeps 5)
            _repair.restore_image(pf, "0")  # newest good backup = the state before the write
            assert data.read_bytes() == before_bytes
            seen["restored"] += 1
        assert os.listdir(cwd) == [] and os.listdir(tmp_path / "tmp") == []
    p, t0 = _start(["bridge", str(pf), flavour, str(sets[0])], cwd, env)  # a normal re-run
    _finish(p, t0)
    assert _state(pf) == (users, names[0])
    assert not (pf.parent / "magnipath" / "tmp").exists()  # killed runs' folders removed
    assert not [f for f in os.listdir(data.parent) if f.startswith(".")]
    return seen


@pytest.mark.qupath
def test_kill_loop_bridge_write(qupath_double, qupath_flavour, tmp_path, make_slide):
    seen = _bridge_loop(tmp_path, make_slide, qupath_flavour, trials=3, seed=7, n=200)
    assert seen["old"] + seen["new"] == 3


@pytest.mark.slow
@pytest.mark.qupath
def test_kill_loop_bridge_write_long(qupath_double, qupath_flavour, tmp_path, make_slide):
    seen = _bridge_loop(tmp_path, make_slide, qupath_flavour, trials=40, seed=77, n=2000,
                        spread=1.5)
    print(f"kill-loop bridge {qupath_flavour}, 40 SIGKILLs, seed 77:", seen)
    assert seen["old"] >= 3 and seen["new"] >= 1 and seen["restored"] >= 3


@pytest.mark.qupath
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_the_write_finishes_the_image(qupath_double, qupath_flavour, tmp_path,
                                                    make_slide, sig, code):
    """SIGINT/SIGTERM inside the write: the image is finished, then the process exits.

    The child sends the signal to itself as QuPath's writer starts (deterministic, not a
    race with a sleep).
    """
    pf, sets = _bridge_project(tmp_path, make_slide, 1000)
    users, _ = _state(pf)
    cwd, env = tmp_path / "cwd", _env(tmp_path / "tmp")
    p, _t = _start(["bridge", str(pf), qupath_flavour, str(sets[1]), str(int(sig))], cwd, env)
    out, err = p.communicate(timeout=120)
    users_after, preds = _state(pf)
    assert users_after == users and check_image_dir(pf.parent / "data" / "1").status == "ok"
    assert "finishing" in err, err  # the signal was held until the image was written
    assert p.returncode == code and "done" not in out
    assert preds == {f"B{i}" for i in range(1020)}
    assert os.listdir(cwd) == [] and os.listdir(tmp_path / "tmp") == []
