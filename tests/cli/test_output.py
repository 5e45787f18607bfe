"""Terminal output of the CLI: progress per stage, summary last, warnings once."""

from __future__ import annotations

import io
import json
import time
import warnings

import tifffile

from magnipath.cli import main
from magnipath.cli._common import ProgressDisplay, emit_summary, summary_lines
from magnipath.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_reused_bar_restarts_elapsed_time_and_rate_per_pass():
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True)
    for i in range(1, 11):
        display(Progress("infer", i, 10))
    bar = display.bars["infer"]
    time.sleep(0.3)  # the first pass ends; the second slide starts later
    display(Progress("infer", 0, 16))
    display(Progress("infer", 1, 16))
    bar = display.bars["infer"]
    assert bar.n == 1 and bar.total == 16
    assert bar.format_dict["elapsed"] < 0.25  # counted from the start of this pass
    display.close()
    assert display.bars == {}


def test_not_a_tty_prints_a_line_per_stage_not_per_update():
    stream = io.StringIO()
    clock = FakeClock()
    display = ProgressDisplay(stream, tty=False, min_interval=20.0, clock=clock)
    display(Progress("demo", 0, 3, {"step": "synth"}))
    for i in range(1, 1001):  # a long stage: 1000 updates
        clock.t += 0.01
        display(Progress("synth", i, 1000))
    display(Progress("demo", 1, 3, {"step": "train"}))
    for epoch in range(1, 41):  # a repeating stage: 40 passes of 30 batches, 1 s each
        for b in range(1, 31):
            display(Progress("train/batch", b, 30, {"loss": 0.5}))
        clock.t += 1.0
        display(Progress("train/epoch", epoch, 40, {"miou": 0.8}))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "[00:00] demo: synth (0/3)"
    assert lines[1] == "[00:10] synth: 1000/1000 done in 10.0 s"
    assert lines[2] == "[00:10] demo: train (1/3)"
    epoch_lines = [ln for ln in lines if "train/epoch" in ln]
    assert epoch_lines[-1].endswith("train/epoch: 40/40 done in 39.0 s miou=0.8")
    # one line per 20 s of a repeating stage, not one per update (1200 batch updates)
    assert len([ln for ln in lines if "train/batch" in ln]) <= 3
    assert len(lines) < 12


def test_quiet_display_prints_nothing():
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=False, disable=True)
    display(Progress("demo", 0, 1, {"step": "x"}))
    display(Progress("synth", 1, 1))
    assert stream.getvalue() == ""


def test_text_summary_shows_nested_values_and_names_the_json_file(tmp_path):
    summary = {"model": "m", "slides": [{"slide": "a.tif", "n_objects": 3,
                                         "objects_by_class": {"TLS": 1, "Carcinoma": 2},
                                         "note": "x" * 150}],
               "warnings": ["w" * 120], "deep": {"a": {"b": {"c": list(range(100))}}}}
    lines, omitted = summary_lines(summary)
    assert lines[:3] == ["model: m", "slides:", "  [0]:"]
    assert "    n_objects: 3" in lines and f"  - {'w' * 120}" in lines
    assert omitted and "    b: (1 entries, in the JSON summary)" in lines
    out = io.StringIO()
    emit_summary(summary, as_json=False, json_file=tmp_path / "s.json", stream=out,
                 extra_lines=["the result"])
    text = out.getvalue().splitlines()
    assert text == [f"full summary (JSON): {tmp_path / 's.json'}", "the result"]
    assert json.loads((tmp_path / "s.json").read_text())["slides"][0]["n_objects"] == 3


def _plain_tiff(path):
    """A 2048 px single-level TIFF (no pyramid) without a resolution: opening it warns."""
    from magnipath.synth import SynthConfig, make_layout, render_region

    layout = make_layout(SynthConfig(width=2048, height=2048, seed=3))
    tifffile.imwrite(path, render_region(layout, (0, 0, 2048, 2048)), tile=(256, 256),
                     compression="zlib")
    return path


def test_summary_is_last_and_a_warning_is_printed_once(tmp_path, capsys):
    slide = _plain_tiff(tmp_path / "plain.tif")
    # three stages open the slide (mpp estimate: two; tiling: one), each warning from
    # its own line of code: Python's default filter would print it three times
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code = main(["tile", str(slide), "--out", str(tmp_path / "ds"), "--magnification", "5",
                     "--size", "64", "--mpp-override", "estimate", "--summary",
                     str(tmp_path / "tile.json")])
    assert code == 0
    cap = capsys.readouterr()
    assert cap.err.count("has no pyramid") == 1
    assert "magnipath tile: warning:" in cap.err
    assert "\r" not in cap.err  # not a terminal: lines, no bar redraws
    out = cap.out.splitlines()
    assert out[-1] == f"full summary (JSON): {tmp_path / 'tile.json'}"
    assert not any(line.startswith(("{", "}")) for line in out)  # no JSON without --json
    assert json.loads((tmp_path / "tile.json").read_text())["n_tiles"] >= 0
