"""README's "Five-minute tour" runs as written (at a reduced size), so it cannot rot."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from magnipath.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

REDUCED = {
    "--width 8192 --height 8192": "--width 3072 --height 3072",
    "--epochs 10": "--epochs 2",
}
"""Substitutions the test applies (each must occur in the tour): smaller slides, fewer epochs."""

SKIPPED = ("source .venv/bin/activate", "napari ")
"""Lines a test cannot run: the shell's venv (the test runs in it) and the GUI."""


def tour_commands(text: str) -> list[str]:
    """The shell commands of the tour: continuations joined, comments dropped."""
    section = text.split("## Five-minute tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's Five-minute tour has no ```bash block"
    joined = block.group(1).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(" ".join(words))
    return commands


def test_the_tour_lists_every_step_in_order():
    cmds = tour_commands(README.read_text())
    magnipath = [c.split()[1] for c in cmds if c.startswith("magnipath ")]
    assert magnipath == ["synth", "synth", "info", "tile", "train", "infer", "evaluate"]
    assert all(c.startswith(("magnipath ", *SKIPPED)) for c in cmds)
    # every file a command reads is made by an earlier command
    made = " ".join(c for c in cmds if c.startswith("magnipath synth"))
    assert "slides/a.tif" in made and "slides/b.tif" in made
    assert not any("--preset dmmn" in c for c in cmds), "the paper preset takes ~12 h on a CPU"


def test_the_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    tour = "\n".join(tour_commands(text))
    for old, new in REDUCED.items():
        assert old in tour, f"the tour no longer has {old!r}: update REDUCED"
        tour = tour.replace(old, new)
    monkeypatch.chdir(tmp_path)
    for cmd in tour.splitlines():
        if cmd.startswith(SKIPPED):
            continue
        argv = shlex.split(cmd)[1:]
        code = main(argv)
        cap = capsys.readouterr()
        assert code == 0, f"{cmd}\n{cap.err[-2000:]}"
    assert (tmp_path / "predictions" / "b.geojson").is_file()
    assert (tmp_path / "model" / "best.pt").is_file()
    assert main(["evaluate", "predictions/b.zarr", "--truth", "slides/b.geojson", "--json",
                 "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert 0.0 <= ev["mean_iou"] <= 1.0


@pytest.mark.parametrize("line", ["magnipath info a.tif  # comment", "magnipath info a.tif"])
def test_comments_are_not_arguments(line):
    assert tour_commands(f"## Five-minute tour\n```bash\n{line}\n```\n") == [
        "magnipath info a.tif"]
