"""The npe2 manifest: valid, every command importable, contributions where napari finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import npe2

ROOT = Path(__file__).resolve().parents[2]


def test_npe2_validate_with_imports():
    exe = shutil.which("npe2", path=str(Path(sys.executable).parent)) or "npe2"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([exe, "validate", "napari-magnipath", "--imports"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_manifest_is_the_packaged_one():
    link = ROOT / "src" / "magnipath" / "napari.yaml"
    assert link.is_symlink() and link.resolve() == (ROOT / "napari.yaml").resolve()


def test_contributions():
    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-magnipath")
    contrib = mf.contributions
    assert all(c.id.startswith("napari-magnipath.") for c in contrib.commands)
    assert [w.display_name for w in contrib.widgets] == [
        "Tiling", "Training", "Inference", "QuPath", "Magnification", "Mitosis"]
    assert [s.display_name for s in contrib.sample_data] == ["MagniPath synthetic slide"]
    assert {w.layer_types[0] for w in contrib.writers} == {"shapes", "points", "labels"}
    readers = {r.command: r.filename_patterns for r in contrib.readers}
    assert "*.svs" in readers["napari-magnipath.get_slide_reader"]
    assert "*.geojson" in readers["napari-magnipath.get_geojson_reader"]
    assert readers["napari-magnipath.get_qpproj_reader"] == ["*.qpproj"]
