"""The physical magnification ruler reads synthetic slides at their true µm/px.

``magnipath.magnification.physical_estimate`` is calibrated on real H&E (its
4.0 µm lymphocyte LoG diameter is not fitted to synthetic slides); the renderer's
sectioned, centrally dense nuclei must read right with it (issue 15 item 4).
"""

import numpy as np
import pytest

from magnipath.magnification import physical_estimate
from magnipath.synth import SynthConfig, make_layout, render_region
from magnipath.synth._stamp import section_profile


@pytest.fixture(scope="module")
def layout():
    return make_layout(SynthConfig(width=4096, height=4096, mpp=0.25, seed=1000))


def _tls_box(layout, side_um: float):
    g = max((g for n, g in layout.objects if n == "TLS"), key=lambda g: g.area)
    p = g.representative_point()
    s = side_um / layout.mpp
    return (p.x - s / 2, p.y - s / 2, s, s)


@pytest.mark.parametrize("mpp", [0.25, 0.5])
def test_the_physical_estimate_reads_the_true_mpp_of_a_lymphocyte_region(layout, mpp):
    img = render_region(layout, _tls_box(layout, 200.0), mpp)
    e = physical_estimate(img)
    assert e.ok, e.reason
    assert e.mpp == pytest.approx(mpp, rel=0.10), (mpp, e.mpp, e.diameter_px)


def test_the_section_profile_is_densest_in_the_centre_and_vanishes_at_the_envelope():
    rho = np.linspace(0.0, 1.2, 13, dtype=np.float32)
    z = np.zeros_like(rho)
    tau = np.full_like(rho, 4.0 / 3.0)  # a 4 µm section through a nucleus of 3 µm depth
    centred = section_profile(rho, z, tau)
    assert centred[0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(centred) <= 0) and np.all(centred[rho >= 1.0] == 0.0)
    # a thick section holds the whole nucleus: 4/3 (1 - rho^2)^(3/2), normalised
    thick = section_profile(rho, z, np.full_like(rho, 10.0))
    inside = rho < 1
    expect = (1 - rho[inside] ** 2) ** 1.5
    assert np.allclose(thick[inside], expect, atol=1e-5)
    # a cut off the centre is paler and smaller
    off = section_profile(rho, np.full_like(rho, 1.4), tau)
    assert off[0] < centred[0] and np.count_nonzero(off) < np.count_nonzero(centred)
