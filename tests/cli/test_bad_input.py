"""Bad input on the command line: one paragraph naming the file, exit 1, no traceback."""

from __future__ import annotations

import pytest

from magnipath.cli import main


@pytest.mark.parametrize("argv", [
    ["infer", "slide.tif", "--model", "model", "--out", "{file}"],
    ["demo", "--out", "{file}"],
])
def test_out_that_is_a_file_is_a_one_paragraph_error(tmp_path, capsys, argv):
    existing = tmp_path / "results.txt"
    existing.write_text("a user's file")
    code = main([a.replace("{file}", str(existing)) for a in argv])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())  # one paragraph, wrapped
    assert err.startswith(f"magnipath {argv[0]}: error: ")
    assert str(existing) in err and "is a file, not a folder" in err
    assert "Traceback" not in err
    assert existing.read_text() == "a user's file"  # untouched


def test_a_file_in_the_way_deeper_down_is_an_error_too(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code = main(["demo", "--out", str(blocker / "demo")])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())  # one paragraph, wrapped
    assert err.startswith("magnipath demo: error: ") and str(blocker) in err
    assert "Traceback" not in err
