"""Architecture contracts that import-linter cannot see: lazy paquo, no GUI in the core."""

import pkgutil
import subprocess
import sys

import magnipath


def core_modules():
    mods = ["qupath_bridge"]
    for m in pkgutil.walk_packages(magnipath.__path__, "magnipath."):
        if not m.name.startswith("magnipath._napari"):
            mods.append(m.name)
    return mods


def test_core_imports_no_gui_and_no_paquo():
    code = (
        "import importlib, sys\n"
        f"for m in {core_modules()!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = [m for m in ('napari', 'qtpy', 'PyQt5', 'PySide6', 'paquo', 'jpype', 'magicgui')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
