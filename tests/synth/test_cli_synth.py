"""``magnipath synth`` on the command line."""

import json

import tifffile

from magnipath.cli import build_parser, main


def test_synth_writes_slide_and_truth_and_prints_json(tmp_path, capsys):
    out = tmp_path / "cli.tif"
    rc = main(["synth", str(out), "--width", "1280", "--height", "1024", "--seed", "7",
               "--tile", "256", "--compression", "zlib", "--json", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["slide"] == str(out)
    assert summary["levels"] == [[1024, 1280], [512, 640]]
    assert set(summary["objects"]) == {"Background", "Stroma", "Carcinoma", "Benign", "TLS",
                                       "Necrosis", "Adipose"}
    for key in ("truth", "partial", "mitoses"):
        assert (tmp_path / summary[key]).exists()
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].shape == (1024, 1280, 3) and tif.pages[0].tile == (256, 256)


def test_synth_bad_input_exits_1_with_a_message(tmp_path, capsys):
    rc = main(["synth", str(tmp_path / "x.tif"), "--tile", "100", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "tile" in err and "multiple of 16" in err
    assert list(tmp_path.iterdir()) == []


def test_help_states_units():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["synth"].format_help()
    for word in ("pixels", "µm per pixel", "--seed", "--compression", "--quality"):
        assert word in text
