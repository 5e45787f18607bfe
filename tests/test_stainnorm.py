"""Stain references and slide-level normalisation, on synthetic H&E with known stains."""

from __future__ import annotations

import numpy as np
import pytest

from magnipath.stain import StainError
from magnipath.stainnorm import StainNormaliser, StainReference, measure_reference
from magnipath.synth import Scanner, SynthConfig, get_scanner, make_layout, render_region


def _render(scanner: Scanner) -> np.ndarray:
    lay = make_layout(SynthConfig(width=2048, height=2048, mpp=0.25, seed=4, scanner=scanner))
    return render_region(lay, (0, 0, 2048, 2048), 1.0)


def test_reference_recovers_the_rendered_stain_vectors():
    h = np.array([0.45, 0.80, 0.40])
    ref = measure_reference([_render(Scanner(h_vector=tuple(h)))])
    assert float(np.asarray(ref.vectors[0]) @ (h / np.linalg.norm(h))) > 0.98
    assert ref.n_pixels > 10_000
    back = StainReference.from_dict(ref.to_dict())
    assert back.vectors == ref.vectors and back.max_conc == ref.max_conc


@pytest.mark.parametrize("look", ["faded", "intense", "yellow", "scanner-b"])
def test_normalising_a_shifted_look_brings_it_back_to_the_reference(look):
    ref_img, shifted = _render(Scanner()), _render(get_scanner(look))
    norm = StainNormaliser(measure_reference([shifted]), measure_reference([ref_img]))
    out = norm(shifted)
    before = np.abs(shifted.astype(int) - ref_img).mean()
    after = np.abs(out.astype(int) - ref_img).mean()
    assert out.dtype == np.uint8 and out.shape == shifted.shape
    assert after < 0.3 * before, (before, after)


def test_black_padding_stays_black_and_identity_is_close():
    img = _render(Scanner())
    ref = measure_reference([img])
    img[:5] = 0
    out = StainNormaliser(ref, ref)(img)
    assert (out[:5] == 0).all()
    assert np.abs(out[5:].astype(int) - img[5:]).mean() < 1.5


def test_no_tissue_or_bad_dicts_raise_stain_errors():
    with pytest.raises(StainError):
        measure_reference([np.full((64, 64, 3), 250, np.uint8)])
    with pytest.raises(StainError, match="max_conc"):
        StainReference.from_dict({"vectors": [[1, 0, 0], [0, 1, 0]], "max_conc": [0, 1]})
    with pytest.raises(StainError):
        measure_reference([])
