"""Resolution metadata: OME, Aperio, TIFF resolution tags, overrides, and the no-mpp error."""

from __future__ import annotations

import pytest

from magnipath._errors import SlideError
from magnipath.slide import open_slide

from ._files import pyramid, textured, write_generic, write_ome

IMG = textured(300, 400)


def test_ome_physical_size(tmp_path):
    path = write_ome(tmp_path / "a.ome.tif", pyramid(IMG, 3), physical_size=0.5)
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(0.5)
        assert s.mpp_source == "ome"
        assert s.magnification == pytest.approx(20.0)


def test_ome_physical_size_in_nanometres(tmp_path):
    path = write_ome(tmp_path / "nm.ome.tif", pyramid(IMG, 2), physical_size=250.0, unit="nm")
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(0.25)
        assert s.mpp_source == "ome"


def test_aperio_description(tmp_path):
    desc = ("Aperio Image Library v12.0.15 \r\n46000x32914 [0,100 46000x32714] (256x256) "
            "JPEG/RGB Q=70|AppMag = 40|StripeWidth = 2040|ScanScope ID = SS1234|"
            "MPP = 0.2520|Left = 25.7|Top = 23.4")
    path = write_generic(tmp_path / "a.svs", pyramid(IMG, 2), description=desc)
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(0.252)
        assert s.mpp_source == "aperio"
        assert s.magnification == pytest.approx(10 / 0.252)
        assert s.objective_power == pytest.approx(40)


def test_aperio_appmag_only(tmp_path):
    desc = "Aperio Image Library v12.0.15 \r\n400x300 (256x256) JPEG/RGB Q=70|AppMag = 20"
    path = write_generic(tmp_path / "b.svs", pyramid(IMG, 2), description=desc)
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(0.5)
        assert s.mpp_source == "aperio"


@pytest.mark.parametrize(("unit", "res", "mpp"), [
    ("CENTIMETER", 1e4 / 0.25, 0.25),
    ("CENTIMETER", 20000.0, 0.5),
    ("INCH", 25400 / 0.25, 0.25),
    ("INCH", 50800.0, 0.5),
])
def test_resolution_tags(tmp_path, unit, res, mpp):
    path = write_generic(tmp_path / "r.tif", pyramid(IMG, 2), resolution=res, unit=unit)
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(mpp)
        assert s.mpp_source == "tiff-resolution"


def test_override_beats_metadata(tmp_path):
    path = write_generic(tmp_path / "o.tif", pyramid(IMG, 2), resolution=40000.0)
    with open_slide(path, mpp=0.5) as s:
        assert s.mpp == 0.5
        assert s.mpp_source == "override"
        assert s.magnification == pytest.approx(20.0)


def test_no_mpp_error_names_file_and_how_to_fix(tmp_path):
    path = write_generic(tmp_path / "nompp.tif", pyramid(IMG, 2), resolution=None)
    with pytest.raises(SlideError) as info:
        open_slide(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "--mpp" in msg
    assert "mpp=" in msg
    with open_slide(path, mpp=0.25) as s:  # the advice works
        assert s.mpp == 0.25


def test_screen_dpi_is_not_a_scan_resolution(tmp_path):
    path = write_generic(tmp_path / "dpi.tif", pyramid(IMG, 2), resolution=72.0, unit="INCH")
    with pytest.raises(SlideError, match="--mpp"):
        open_slide(path)


@pytest.mark.parametrize("bad", [0, -0.25, float("nan"), "0.25"])
def test_bad_override(tmp_path, bad):
    path = write_generic(tmp_path / "o.tif", pyramid(IMG, 2), resolution=40000.0)
    with pytest.raises(SlideError, match="mpp"):
        open_slide(path, mpp=bad)


def test_levels_and_downsamples(tmp_path):
    path = write_generic(tmp_path / "l.tif", pyramid(textured(1001, 1503), 4),
                         resolution=40000.0)
    with open_slide(path) as s:
        assert (s.height, s.width) == (1001, 1503)
        assert [lv.shape for lv in s.levels] == [(1001, 1503), (501, 752), (251, 376),
                                                 (126, 188)]
        assert [lv.downsample for lv in s.levels] == [1.0, 2.0, 4.0, 8.0]
        assert [lv.index for lv in s.levels] == [0, 1, 2, 3]
        assert s.best_level(1.0).index == 0
        assert s.best_level(3.99).index == 1
        assert s.best_level(3.999).index == 2  # within 1e-3 relative tolerance
        assert s.best_level(5.0).index == 2
        assert s.best_level(100.0).index == 3
        assert s.best_level(0.5).index == 0
