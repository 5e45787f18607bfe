"""Macenko H&E separation and normalisation on synthetic Beer–Lambert images."""

import numpy as np
import pytest

from magnipath.stain import (
    REFERENCE_VECTORS,
    StainError,
    hed_channels,
    macenko_vectors,
    max_concentrations,
    normalise,
    separate,
)

H = np.array([0.65, 0.70, 0.29])
E = np.array([0.07, 0.99, 0.11])
V = np.stack([H / np.linalg.norm(H), E / np.linalg.norm(E)])


def render(conc: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Beer–Lambert: concentrations (..., 2) -> uint8 RGB with OD = -ln((I + 1) / 255)."""
    od = conc @ vectors
    return np.clip(np.rint(255.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8)


def concentrations(n: int, seed: int) -> np.ndarray:
    """H&E concentrations with some pure-H and pure-E pixels and some glass."""
    rng = np.random.default_rng(seed)
    c = np.stack([rng.gamma(2.0, 0.4, n * n), rng.gamma(2.0, 0.3, n * n)], axis=1)
    kind = rng.random(n * n)
    c[kind < 0.15, 1] = 0.0        # nuclei: haematoxylin only
    c[(kind >= 0.15) & (kind < 0.35), 0] = 0.0  # cytoplasm: eosin only
    c[kind > 0.95] = 0.0           # glass
    return c.reshape(n, n, 2)


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macenko_recovers_known_vectors(seed):
    rng = np.random.default_rng(100 + seed)
    vec = V * rng.uniform(0.9, 1.1, V.shape)  # a slide-to-slide variation
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    rgb = render(concentrations(200, seed), vec)
    est = macenko_vectors(rgb)
    assert est.shape == (2, 3)
    assert np.allclose(np.linalg.norm(est, axis=1), 1.0)
    assert np.all(angles_deg(est, vec) < 3.0), angles_deg(est, vec)


def test_separate_inverts_beer_lambert():
    c = concentrations(64, 5)
    got = separate(render(c, V), V)
    assert got.shape == (64, 64, 2) and got.dtype == np.float32
    # uint8 quantisation of I limits the precision; dark pixels are the worst
    ok = (c.sum(-1) < 2.0)
    assert np.abs(got[ok] - c[ok]).max() < 0.05


def test_normalise_brings_a_stain_shifted_copy_back():
    c = concentrations(200, 7)
    original = render(c, V)
    target_max = max_concentrations(c)
    # the same tissue stained differently: other vectors, stronger haematoxylin, paler eosin
    shifted_vec = V + np.array([[-0.08, 0.05, 0.10], [0.10, -0.05, 0.08]])
    shifted_vec /= np.linalg.norm(shifted_vec, axis=1, keepdims=True)
    shifted = render(c * np.array([1.3, 0.7]), shifted_vec)
    before = np.abs(shifted.astype(int) - original.astype(int)).mean()
    back = normalise(shifted, V, target_max)
    after = np.abs(back.astype(int) - original.astype(int)).mean()
    assert back.shape == original.shape and back.dtype == np.uint8
    assert before > 15
    assert after < 3.0, (before, after)


def test_hed_channels_is_the_separation_clipped_at_zero():
    rgb = render(concentrations(64, 3), V)
    he = hed_channels(rgb, V)
    assert he.shape == (64, 64, 2) and he.min() >= 0
    assert np.allclose(he, np.maximum(separate(rgb, V), 0))


def test_blank_image_has_no_stain_vectors_and_hed_falls_back():
    white = np.full((32, 32, 3), 250, np.uint8)
    with pytest.raises(StainError, match="stained pixels"):
        macenko_vectors(white)
    he = hed_channels(white)  # reference vectors are used
    assert np.allclose(he, np.maximum(separate(white, REFERENCE_VECTORS), 0))


def test_grey_image_cannot_be_separated():
    rng = np.random.default_rng(0)
    g = rng.integers(30, 200, (64, 64, 1)).astype(np.uint8)
    with pytest.raises(StainError):
        macenko_vectors(np.repeat(g, 3, axis=-1))


def test_bad_shapes_are_refused():
    with pytest.raises(StainError, match="RGB"):
        separate(np.zeros((4, 4), np.uint8), V)
    with pytest.raises(StainError, match=r"\(2, 3\)"):
        separate(np.zeros((4, 4, 3), np.uint8), V[:1])


def test_deconvolution_adds_the_residual_to_the_two_stains():
    from magnipath.stain import deconvolve, residual_vector

    r = residual_vector(V)
    assert abs(r @ V[0]) < 1e-12 and abs(r @ V[1]) < 1e-12 and np.isclose(np.linalg.norm(r), 1)
    c = concentrations(32, 9)
    extra = 0.2 * np.random.default_rng(0).random((32, 32, 1))  # OD outside the H-E plane
    od = c @ V + extra * r
    rgb = np.clip(np.rint(255.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8)
    three = deconvolve(rgb, V)
    assert three.shape == (32, 32, 3)
    np.testing.assert_allclose(three[..., :2], separate(rgb, V), atol=1e-5)
    ok = od.max(-1) < 2.0
    assert np.abs(three[..., 2][ok] - extra[..., 0][ok]).max() < 0.03
