"""Signals around the JVM (qupath_bridge._jvm), with a real JVM through JPype where one exists.

QuPath runs in the JVM paquo starts with JPype; these tests start the machine's own
JVM the same way (``jpype.startJVM`` inside :func:`qupath_bridge._jvm.starting_jvm`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _jvm_path() -> str | None:
    try:
        import jpype

        return jpype.getDefaultJVMPath()
    except Exception:  # noqa: BLE001 - no JVM found, in any of JPype's ways
        return None


CHILD = textwrap.dedent("""
    import sys, time
    import jpype
    from qupath_bridge import _jvm
    try:
        with _jvm.starting_jvm():
            print("starting", flush=True)  # inside the guard: a Ctrl-C now is one during the start
            jpype.startJVM(sys.argv[1], convertStrings=False)  # as paquo calls it
        print("started", flush=True)
        time.sleep(float(sys.argv[2]))
        print("slept", flush=True)
    except KeyboardInterrupt:
        print("interrupted", jpype.isJVMStarted(), flush=True)
        sys.exit(130)
""")


@pytest.mark.skipif(_jvm_path() is None, reason="needs a Java runtime JPype can find")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 1.0])
def test_ctrl_c_at_any_time_reaches_python_and_leaves_no_files(tmp_path, delay):
    """Ctrl-C while the JVM starts or runs: Python's KeyboardInterrupt, exit 130, nothing in cwd.

    Without the guard, JPype's Java handler ends the process (exit 130 from Java, no
    Python ``finally``), and a signal during the start can crash the JVM.
    """
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}", "TMPDIR": str(tmp)}
    p = subprocess.Popen([sys.executable, "-c", CHILD, _jvm_path(), "30"], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "starting"
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert "interrupted True" in out, (out, err)  # Python got control, the JVM is up
    assert os.listdir(cwd) == []


def test_jvm_options_and_deferred_signals():
    from qupath_bridge import _jvm

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    opts = _jvm.jvm_options()
    assert opts[0] == "-Xrs" and opts[1].startswith("-XX:ErrorFile=")
    assert str(_jvm.crash_dir()) in opts[1] and "%p" in opts[1]
    with pytest.raises(KeyboardInterrupt), _jvm.deferred_signals("a test"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        finished = True  # the block runs to its end before the interrupt
    assert finished
    with pytest.raises(SystemExit) as e, _jvm.deferred_signals("a test"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert e.value.code == 143
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back as they were
