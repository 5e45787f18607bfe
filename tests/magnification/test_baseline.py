"""The non-learning baseline: Otsu nuclei on the haematoxylin channel, mean blob area."""

import math

import numpy as np
import pytest

from magnipath.magnification import AreaTable, baseline_area, complete_blob_areas
from magnipath.synth import SynthConfig, make_layout, render_region


def test_blobs_touching_the_border_or_small_are_ignored():
    m = np.zeros((40, 40), bool)
    m[0:5, 10:20] = True      # touches the top border: 50 px
    m[10:15, 10:15] = True    # 25 px
    m[20:24, 20:25] = True    # 20 px: not larger than 20
    m[30:36, 30:36] = True    # 36 px
    m[30, 20] = m[31, 21] = True  # 2 px, 8-connected diagonal
    assert sorted(complete_blob_areas(m).tolist()) == [25.0, 36.0]
    assert sorted(complete_blob_areas(m, min_area=0).tolist()) == [2.0, 20.0, 25.0, 36.0]


def test_baseline_of_an_image_without_nuclei_is_nan():
    area, n = baseline_area(np.full((224, 224, 3), 240, np.uint8))
    assert math.isnan(area) and n == 0


_BOX = (512, 512, 896, 896)  # the same tissue at 40x, 20x and 10x (896, 448, 224 px)


@pytest.fixture(scope="module")
def areas():
    layout = make_layout(SynthConfig(width=2048, height=2048, seed=40))
    return {m: baseline_area(render_region(layout, _BOX, mpp=m)) for m in (0.25, 0.5, 1.0)}


def test_baseline_areas_scale_with_magnification_squared(areas):
    (a40, n40), (a20, n20) = areas[0.25], areas[0.5]
    assert min(n40, n20) >= 20
    # ideal ratio 4; Otsu at low resolution and the > 20 px rule shrink it a little
    assert 3.4 < a40 / a20 < 4.6, (a40, a20)


@pytest.mark.xfail(strict=True, reason=(
    "known miss since the synthetic nuclei became soft-rimmed sectioned spheres (issue 15 "
    "item 4): at 10x (1 µm/px) most Otsu blobs of a lymphocyte are <= 20 px and dropped, so "
    "the 10x mean sits near the cut-off (seed 40: 15 blobs, a20/a10 = 2.6; with the old "
    "uniformly dark disks 74 blobs, 3.5) - the baseline's known weakness on real-looking "
    "nuclei (docs/magnification.md)"))
def test_baseline_areas_scale_down_to_10x(areas):
    (a40, _), (a20, _), (a10, n10) = areas[0.25], areas[0.5], areas[1.0]
    assert n10 >= 20
    assert 2.8 < a20 / a10 < 4.6, (a20, a10)
    assert 11 < a40 / a10 < 20


def test_calibration_table_maps_measured_areas():
    table = AreaTable((10.0, 20.0, 40.0), (36.0, 125.0, 500.0), empty_class=10.0)
    assert table.to_magnification([30.0, 140.0, 480.0, np.nan]).tolist() == pytest.approx(
        [10.0, 20.0, 40.0, 10.0])
