"""Physical calibration: nuclei have their published sizes in µm at any resolution."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from magnipath.synth import SynthConfig, make_layout, render_region
from magnipath.synth._nuclei import CARCINOMA, CENTROBLAST, FIBROBLAST, LYMPHOCYTE


@pytest.fixture(scope="module")
def layout():
    return make_layout(SynthConfig(width=8192, height=8192, mpp=0.25, seed=1000))


def _dark_nucleus_diameters(layout, name: str, mpp: float, side_um: float = 200.0):
    """Equivalent diameters (µm) of connected dark-haematoxylin blobs in a class region.

    The nuclei are sectioned spheres with a soft rim (``_stamp.section_profile``), so
    the outline is taken where the haematoxylin rises above the surrounding tissue:
    0.3 OD, about an eighth of a lymphocyte's peak (0.5 OD, used when nuclei were
    uniformly dark disks, cuts inside the soft rim and reads ~4.9 µm).
    """
    g = max((g for n, g in layout.objects if n == name), key=lambda g: g.area)
    p = g.representative_point()
    s = side_um / layout.mpp
    img = render_region(layout, (p.x - s / 2, p.y - s / 2, s, s), mpp)
    od_h = layout.stain.separate(img)[..., 0]
    lab, _ = ndi.label(od_h > 0.3)
    areas = np.bincount(lab.ravel())[1:] * mpp * mpp
    return 2 * np.sqrt(areas[areas > 4.0] / np.pi)


@pytest.mark.parametrize("name", ["Stroma", "TLS"])
def test_lymphocyte_nuclei_measure_their_published_size_at_every_resolution(layout, name):
    med = {mpp: float(np.median(_dark_nucleus_diameters(layout, name, mpp)))
           for mpp in (0.25, 0.5)}
    for v in med.values():  # small lymphocytes: nuclei of about 5-8 µm (docs/synth.md)
        assert 5.0 <= v <= 8.0, med
    assert abs(med[0.5] / med[0.25] - 1) < 0.1, med


def test_species_sizes_are_in_their_published_ranges():
    def diam(sp):
        return 2 * sp.a[0], 2 * sp.a[1]

    lo, hi = diam(LYMPHOCYTE)
    assert 5.0 <= lo < hi <= 8.0
    lo, hi = diam(CENTROBLAST)
    assert lo > diam(LYMPHOCYTE)[1] and hi <= 13.0  # centroblasts: larger than lymphocytes
    lo, hi = diam(CARCINOMA)
    assert lo >= 8.0 and hi <= 16.0  # grade 2-3 breast carcinoma: >1.5-2x normal epithelium
    assert 2 * FIBROBLAST.a[1] <= 16.0 and FIBROBLAST.aspect[1] < 0.4  # spindle nuclei
