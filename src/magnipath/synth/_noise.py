"""Deterministic hashing and noise in absolute (level-0) coordinates.

Every value here is a pure function of a key and absolute coordinates, and is
computed with IEEE arithmetic only (no transcendental functions), so the same
level-0 pixel gets bit-identical values whatever region or tile asks for it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_U32 = np.uint32


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, in place on a uint32 array."""
    h ^= h >> _U32(16)
    h *= _U32(0x85EBCA6B)
    h ^= h >> _U32(13)
    h *= _U32(0xC2B2AE35)
    h ^= h >> _U32(16)
    return h


def mix_key(*parts: int) -> int:
    """A 32-bit key from integers (seed, purpose, ...)."""
    h = np.array([0x9E3779B9], dtype=_U32)
    for p in parts:
        h ^= np.array([int(p) & 0xFFFFFFFF], dtype=_U32)
        h = _fmix(h * _U32(0x01000193) + _U32(0x7F4A7C15))
    return int(h[0])


def hash2(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """uint32 hash of integer lattice coordinates (broadcast) and a key."""
    with np.errstate(over="ignore"):
        hx = np.asarray(ix, dtype=np.int64).astype(_U32) * _U32(0x27D4EB2D)
        hy = np.asarray(iy, dtype=np.int64).astype(_U32) * _U32(0x165667B1)
        h = _fmix(hy + _U32(key & 0xFFFFFFFF))
        h = h ^ hx
        return _fmix(h + _U32(0x9E3779B9))


def hash_more(h: np.ndarray, k: int) -> np.ndarray:
    """A further independent uint32 stream from hashes ``h``."""
    return _fmix(h ^ _U32((0x9E3779B9 * (k + 1)) & 0xFFFFFFFF))


def to_unit(h: np.ndarray) -> np.ndarray:
    """uint32 hashes -> float64 uniform in [0, 1)."""
    return (h >> _U32(8)).astype(np.float64) * (1.0 / (1 << 24))


def _smooth(f: np.ndarray) -> np.ndarray:
    return f * f * (3.0 - 2.0 * f)


def value_noise_grid(xs: np.ndarray, ys: np.ndarray, scale: float, key: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] on the grid ``ys x xs``.

    Parameters
    ----------
    xs, ys : 1-D float64 arrays
        Absolute coordinates of the pixel centres (any unit, the same as ``scale``).
    scale : float
        Lattice spacing in the unit of ``xs``/``ys``.
    key : int
        Hash key (use :func:`mix_key`).

    Returns
    -------
    numpy.ndarray
        ``(len(ys), len(xs))`` float32.
    """
    u = xs / scale
    v = ys / scale
    ix = np.floor(u)
    iy = np.floor(v)
    sx = _smooth(u - ix).astype(np.float32)
    sy = _smooth(v - iy).astype(np.float32)
    ix = ix.astype(np.int64)
    iy = iy.astype(np.int64)
    lx0, ly0 = int(ix.min()), int(iy.min())
    lx = np.arange(lx0, int(ix.max()) + 2)
    ly = np.arange(ly0, int(iy.max()) + 2)
    lat = (to_unit(hash2(lx[None, :], ly[:, None], key)) * 2.0 - 1.0).astype(np.float32)
    cx = ix - lx0
    a = lat[:, cx] * (1.0 - sx) + lat[:, cx + 1] * sx  # (ly, w): depends on x only
    cy = iy - ly0
    return a[cy] * (1.0 - sy)[:, None] + a[cy + 1] * sy[:, None]


def value_noise_points(x: np.ndarray, y: np.ndarray, scale: float, key: int) -> np.ndarray:
    """:func:`value_noise_grid` evaluated at scattered points ``(x, y)`` (float64)."""
    u = np.asarray(x, dtype=np.float64) / scale
    v = np.asarray(y, dtype=np.float64) / scale
    ix, iy = np.floor(u), np.floor(v)
    sx = _smooth(u - ix).astype(np.float32)
    sy = _smooth(v - iy).astype(np.float32)
    ix, iy = ix.astype(np.int64), iy.astype(np.int64)

    def lat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (to_unit(hash2(a, b, key)) * 2.0 - 1.0).astype(np.float32)

    top = lat(ix, iy) * (1.0 - sx) + lat(ix + 1, iy) * sx
    bot = lat(ix, iy + 1) * (1.0 - sx) + lat(ix + 1, iy + 1) * sx
    return top * (1.0 - sy) + bot * sy


def fbm_grid(xs: np.ndarray, ys: np.ndarray, scale: float, key: int,
             octaves: int = 3, gain: float = 0.5) -> np.ndarray:
    """Fractal sum of value noise, roughly in [-1, 1]; octaves halve the scale."""
    out = value_noise_grid(xs, ys, scale, key)
    amp, norm = 1.0, 1.0
    for o in range(1, octaves):
        amp *= gain
        norm += amp
        out += np.float32(amp) * value_noise_grid(xs, ys, scale / (2 ** o), mix_key(key, o))
    out *= np.float32(1.0 / norm)
    return out


_TABLE = 1024


@lru_cache(maxsize=16)
def _white_table(key: int) -> np.ndarray:
    rng = np.random.default_rng(key)
    return rng.standard_normal((_TABLE, _TABLE)).astype(np.float32)


def white_grid(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Per-pixel standard normal noise at integer pixel coordinates (periodic, 1024 px).

    Parameters
    ----------
    ix, iy : 1-D int arrays
        Absolute integer coordinates of the columns and rows.
    """
    t = _white_table(key)
    return t[np.ix_(np.mod(iy, _TABLE), np.mod(ix, _TABLE))]


def tri_wave(t: np.ndarray) -> np.ndarray:
    """Smooth periodic wave in [0, 1] with period 1 (a polynomial stand-in for a cosine)."""
    f = t - np.floor(t)
    f = np.abs(2.0 * f - 1.0)
    return f * f * (3.0 - 2.0 * f)
