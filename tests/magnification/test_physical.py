"""The physical magnification estimate: scale equivariance on real images, refusals, one path."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from magnipath.magnification import (
    CannotEstimate,
    estimate,
    physical_estimate,
    suggest_mpp,
)
from magnipath.magnification._realdata import real_images, rescale

REAL = {img.name: img for img in real_images()}
FACTORS = (0.25, 0.35, 0.5, 0.7, 1.4, 2.0)
# below these factors an image may refuse ("cannot estimate"), never answer wrongly
MUST_ANSWER = {"skimage-ihc": 0.5, "tiatoolbox-target": 0.25, "cmu-1-small-region": 0.5}
KNOWN_MISS = {("skimage-ihc", 0.5): "13 % below the f = 1 reading: the 256 px IHC image holds "
                                    "few pale counterstained nuclei (docs/magnification.md)"}
SLOW = {("cmu-1-small-region", 2.0), ("cmu-1-small-region", 1.4), ("tiatoolbox-target", 2.0)}


def _cases():
    for name in sorted(REAL):
        for f in FACTORS:
            marks = []
            if (name, f) in KNOWN_MISS:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_MISS[(name, f)]))
            if (name, f) in SLOW:
                marks.append(pytest.mark.slow)
            yield pytest.param(name, f, marks=marks, id=f"{name}-x{f:g}")


_CACHE: dict = {}


def _load(name):
    if name not in _CACHE:
        rgb = REAL[name].load()
        _CACHE[name] = (rgb, physical_estimate(rgb))
    return _CACHE[name]


@pytest.mark.parametrize(("name", "factor"), list(_cases()))
def test_the_estimate_follows_every_rescale_factor(name, factor):
    """Rescaling by f in 0.25..2 divides the estimate by f within 10 % (or it refuses)."""
    rgb, ref = _load(name)
    assert ref.ok, ref.reason
    e = physical_estimate(rescale(rgb, factor))
    if factor >= MUST_ANSWER[name]:
        assert e.ok, (name, factor, e.reason)
    if e.ok:
        assert e.mpp * factor / ref.mpp == pytest.approx(1.0, abs=0.10), (name, factor)
    else:
        assert e.reason and ("out of range" in e.reason or "faint" in e.reason)


@pytest.mark.parametrize("name", sorted(REAL))
def test_the_estimate_is_near_the_truth_on_real_images(name):
    _, e = _load(name)
    assert e.mpp == pytest.approx(REAL[name].mpp, rel=0.10), (name, e)
    lo, hi = e.mpp_interval
    assert lo < e.mpp < hi and e.confidence in ("high", "medium", "low")
    assert e.n_nuclei >= 15


def test_it_refuses_rather_than_guesses(tmp_path):
    glass = np.full((400, 400, 3), 238, np.uint8)
    e = physical_estimate(glass)
    assert not e.ok and "too few nuclei" in e.reason
    with pytest.raises(CannotEstimate, match="too few nuclei"):
        e.raise_if_empty("glass.png")
    # heavy blur: the nuclei melt into the background
    rgb = REAL["skimage-ihc"].load()
    blurred = ndi.gaussian_filter(rgb.astype(np.float32), (6, 6, 0)).round().astype(np.uint8)
    b = physical_estimate(blurred)
    assert not b.ok and ("faint or blurred" in b.reason or "too few" in b.reason), b
    # far too coarse: nuclei under the sampling limit
    c = physical_estimate(rescale(rgb, 0.15))
    assert not c.ok, c
    r = estimate(glass)
    assert r["mpp_estimate"] is None and r["magnification"] is None
    assert "too few nuclei" in r["cannot_estimate"]


def test_estimate_and_suggest_mpp_give_one_answer_for_the_same_pixels(tmp_path):
    rgb = REAL["skimage-ihc"].load()
    path = tmp_path / "ihc.tif"
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb")   # no resolution
    mpp, details = suggest_mpp(path)
    est = estimate(rgb)
    assert mpp is not None and mpp == est["mpp_estimate"]
    assert details["physical"] == est["physical"] and details["method"] == "physical"
    assert details["mpp_source"] == "estimated (physical)"


def test_a_model_answer_is_combined_only_where_it_agrees():
    from magnipath.magnification._regions import combine

    phys = physical_estimate(REAL["skimage-ihc"].load())
    m = phys.magnification
    agree = combine({}, phys, m * 1.2)
    assert agree["method"] == "physical+fusion" and "disagreement" not in agree
    assert agree["magnification_continuous"] == pytest.approx(m * 1.2 ** 0.5)
    apart = combine({}, phys, m * 1.5)
    assert apart["method"] == "physical" and apart["magnification_continuous"] == m
    assert apart["disagreement"]["fusion"] == pytest.approx(m * 1.5)
    none = combine({}, physical_estimate(np.full((300, 300, 3), 236, np.uint8)), 20.0)
    assert none["method"] == "fusion" and none["magnification"] == 20.0
    assert "too few nuclei" in none["unchecked"]
