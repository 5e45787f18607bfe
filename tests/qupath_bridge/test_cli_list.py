"""`magnipath qupath list` without --json: a readable table (against the QuPath doubles)."""

from __future__ import annotations

import json
import shutil

import pytest

from magnipath.cli import main
from magnipath.cli.qupath import format_image_table


def test_format_image_table_aligns_and_flags_missing_slides():
    listed = {"images": [
        {"index": 0, "name": "slide A.svs", "id": "1", "width": 1024, "height": 768,
         "mpp": 0.2501, "path": "/data/a.svs", "uri": "file:/data/a.svs", "slide_found": True},
        {"index": 1, "name": "b", "id": "12", "width": None, "height": None, "mpp": None,
         "path": "/old/b.svs", "uri": "file:/old/b.svs", "slide_found": False}],
        "path_classes": [{"name": "Tumor", "color": [200, 0, 0]}]}
    lines = format_image_table(listed).splitlines()
    assert lines[0].split() == ["#", "image", "id", "size", "(px)", "µm/px", "slide"]
    assert set(lines[1]) <= {"-", " "}
    assert "slide A.svs" in lines[2] and "1024 x 768" in lines[2] and "0.2501" in lines[2]
    assert lines[3].endswith("MISSING /old/b.svs") and " - " in lines[3]
    col = lines[0].index("slide")  # columns line up
    assert lines[2][col:] == "/data/a.svs" and lines[3][col:].startswith("MISSING")
    assert lines[-1] == "path classes: Tumor (200, 0, 0)"


@pytest.mark.qupath
def test_plain_list_prints_a_table_and_json_stays_json(tmp_path, make_slide, capsys):
    slides = [make_slide("a.ome.tif", 512, 384, 0.5), make_slide("b b.ome.tif", 256, 256, 0.25)]
    proj = tmp_path / "proj"
    assert main(["qupath", "create", str(proj), *map(str, slides), "--json"]) == 0
    capsys.readouterr()
    shutil.move(slides[1], tmp_path / "moved.ome.tif")
    assert main(["qupath", "list", str(proj)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["#", "image", "id"]
    assert "a.ome.tif" in lines[2] and "512 x 384" in lines[2] and "0.5" in lines[2]
    assert "b b.ome.tif" in lines[3] and "MISSING" in lines[3]
    assert "missing_slides: ['b b.ome.tif']" in out and "n_images: 2" in out
    assert "{" not in out  # no raw JSON
    assert main(["qupath", "list", str(proj), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["images"]) == 2 and listed["missing_slides"] == ["b b.ome.tif"]
