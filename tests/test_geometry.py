import pytest

from magnipath.geometry import TileGeometry
from magnipath.units import magnification_to_mpp, mpp_to_magnification, resolve_mpp


def test_dmmn_inputs_are_concentric_with_paper_fields():
    g = TileGeometry.dmmn()
    assert [i.magnification for i in g.inputs] == [20.0, 10.0, 5.0]
    # a 40x slide: the 256 px target at 20x is 512 level-0 px
    tb = g.target_box(1000, 2000, slide_mpp=0.25)
    assert tb == (1000, 2000, 512, 512)
    boxes = g.input_boxes(tb, slide_mpp=0.25)
    assert [b[2] for b in boxes] == [512, 1024, 2048]  # 256@20x, 512@10x, 1024@5x
    for x, y, w, h in boxes:
        assert (x + w / 2, y + h / 2) == (1256, 2256)


def test_round_trip_dict():
    g = TileGeometry.with_context(1.0, 128, [4.0])
    assert TileGeometry.from_dict(g.to_dict()) == g


def test_units():
    assert mpp_to_magnification(0.25) == 40
    assert magnification_to_mpp(20) == 0.5
    assert resolve_mpp(magnification=5) == 2.0
    with pytest.raises(ValueError):
        resolve_mpp(mpp=0.5, magnification=20)
    with pytest.raises(ValueError):
        resolve_mpp()
