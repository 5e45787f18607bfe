"""Class mapping, area table, fusion and patch geometry against hand-computed values."""

import math

import numpy as np
import pytest

from magnipath.magnification import (
    MAGNIFICATIONS,
    AreaTable,
    MagnificationError,
    closest_magnification,
    fuse,
    source_size,
)


def test_classes_are_the_papers():
    assert MAGNIFICATIONS == (5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0)


@pytest.mark.parametrize(("value", "expected"), [
    (4.0, 5.0), (6.4, 5.0), (6.5, 5.0), (6.6, 8.0), (9.0, 8.0), (9.1, 10.0),
    (12.5, 10.0), (12.6, 15.0), (17.6, 20.0), (25.0, 20.0), (25.1, 30.0), (35.0, 30.0),
    (35.1, 40.0), (80.0, 40.0), (-3.0, 5.0),
])
def test_closest_magnification_hand_values(value, expected):
    # midpoints (6.5, 9, 12.5, 25, 35) go to the lower class
    assert closest_magnification(value) == expected


def test_closest_magnification_keeps_nan_and_shape():
    out = closest_magnification(np.array([[19.0, np.nan]]))
    assert out.shape == (1, 2) and out[0, 0] == 20.0 and math.isnan(out[0, 1])


def test_fusion_hand_values():
    # 0.2 * area + 0.8 * direct
    assert fuse(30.0, 20.0) == pytest.approx(22.0)
    assert fuse(40.0, 30.0) == pytest.approx(32.0)
    assert np.allclose(fuse([5.0, 40.0], [10.0, 10.0], alpha=0.5), [7.5, 25.0])
    assert fuse(8.0, 11.0, alpha=0.0) == 11.0 and fuse(8.0, 11.0, alpha=1.0) == 8.0
    with pytest.raises(MagnificationError):
        fuse(1.0, 2.0, alpha=1.5)


def test_fusion_then_class_mapping_hand_values():
    table = AreaTable(MAGNIFICATIONS, (24.0, 60.0, 95.0, 210.0, 380.0, 650.0, 1150.0))
    # the paper's example: a predicted area of 650 px maps to 30x
    area_cls = table.to_magnification([650.0, 300.0, 100.0])
    assert area_cls.tolist() == [30.0, 20.0, 10.0]
    fused = fuse(area_cls, np.array([36.0, 14.0, 13.0]))
    # 0.2*30 + 0.8*36 = 34.8 -> 30;  0.2*20 + 0.8*14 = 15.2 -> 15;  0.2*10 + 0.8*13 = 12.4 -> 10
    assert np.allclose(fused, [34.8, 15.2, 12.4])
    assert closest_magnification(fused).tolist() == [30.0, 15.0, 10.0]


def test_area_table_fit_means_and_empty_class():
    mags = np.array([5, 5, 5, 10, 10, 40], dtype=float)
    areas = np.array([np.nan, np.nan, 30.0, 100.0, 120.0, 1600.0])
    t = AreaTable.fit(areas, mags, classes=(5.0, 10.0, 40.0))
    assert t.mean_areas == (30.0, 110.0, 1600.0)
    assert t.counts == (1, 2, 1)
    assert t.empty_class == 5.0
    assert t.to_magnification([np.nan, 70.0, 71.0, 900.0]).tolist() == [5.0, 5.0, 10.0, 40.0]
    assert AreaTable.from_dict(t.to_dict()) == t


def test_area_table_skips_classes_without_area():
    t = AreaTable((5.0, 10.0, 20.0), (math.nan, 100.0, 400.0))
    assert t.to_magnification([1.0]).tolist() == [10.0]
    assert math.isnan(float(t.to_magnification(np.nan)))  # no empty class known


@pytest.mark.parametrize(("mag", "side"), [(40, 224), (30, 298.6666666666667), (20, 448),
                                           (15, 597.3333333333334), (10, 896), (8, 1120),
                                           (5, 1792)])
def test_source_box_of_a_40x_scan(mag, side):
    assert source_size(mag) == pytest.approx(side)
    assert source_size(mag, source_mpp=0.25) == pytest.approx(224 * 40 / mag)


def test_source_box_of_a_finer_scan():
    # 0.125 µm/px (80x): a 20x patch covers 224 * 4 px
    assert source_size(20, source_mpp=0.125) == pytest.approx(896)
