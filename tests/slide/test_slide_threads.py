"""Thread safety: concurrent reads equal serial reads; the tile cache stays bounded."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from magnipath.slide import open_slide
from magnipath.slide._cache import TileCache


def _requests(n: int, seed: int = 0) -> list[tuple[tuple[float, float, float, float], float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mpp = float(rng.choice([0.25, 0.5, 1.0, 0.75, 0.37]))
        size = float(rng.integers(16, 300))
        x, y = (float(v) for v in rng.integers(-100, 1400, 2))
        out.append(((x, y, size, size), mpp))
    return out


@pytest.mark.parametrize(("fixture", "cache_bytes"), [
    ("jpeg_slide", 256 * 2**20),
    ("jpeg_slide", 300_000),  # a cache of ~1 tile: constant eviction
    ("zlib_slide", 0),  # no cache at all
])
def test_many_threads_equal_serial(request, fixture, cache_bytes):
    path = request.getfixturevalue(fixture)
    reqs = _requests(150)
    with open_slide(path) as s:
        serial = [s.read_region(b, mpp=m) for b, m in reqs]
    with open_slide(path, cache_bytes=cache_bytes) as s:
        with ThreadPoolExecutor(8) as ex:
            par = list(ex.map(lambda r: s.read_region(r[0], mpp=r[1]), reqs))
        assert s.cache.nbytes <= max(cache_bytes, 0)
    for a, b in zip(serial, par, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_is_lru_and_bounded():
    cache = TileCache(max_bytes=3000)
    calls = []

    def make(key):
        def f():
            calls.append(key)
            return np.full(1000, key, np.uint8)
        return f

    for k in (1, 2, 3):
        cache.get(k, make(k))
    cache.get(1, make(1))  # hit: 1 becomes the most recent
    cache.get(4, make(4))  # evicts 2, the least recent
    assert calls == [1, 2, 3, 4]
    assert cache.nbytes == 3000
    assert 2 not in cache and 1 in cache and 3 in cache and 4 in cache
    cache.get(2, make(2))
    assert calls == [1, 2, 3, 4, 2]
    assert cache.get(4, make(4))[0] == 4


def test_cache_decodes_once_for_concurrent_requests():
    cache = TileCache()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return np.zeros(10, np.uint8)

    with ThreadPoolExecutor(4) as ex:
        first = ex.submit(cache.get, "k", slow)
        started.wait(5)
        others = [ex.submit(cache.get, "k", slow) for _ in range(3)]
        release.set()
        results = [first.result(5)] + [f.result(5) for f in others]
    assert len(calls) == 1
    assert all(r is results[0] for r in results)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_reads_work_in_a_forked_child(jpeg_slide):
    import multiprocessing as mp

    with open_slide(jpeg_slide) as s:
        want = s.read_region((300, 200, 512, 512), mpp=0.5)  # starts the read-ahead pool
        _FORKED["slide"] = s  # inherited by the forked child, not pickled
        try:
            with mp.get_context("fork").Pool(1) as pool:
                got = pool.apply(_read_in_child, ((300, 200, 512, 512),))
        finally:
            _FORKED.clear()
        np.testing.assert_array_equal(got, want)


_FORKED: dict = {}


def _read_in_child(box):
    slide = _FORKED["slide"]
    slide.cache.clear()  # decode again in the child, through its own read-ahead pool
    return slide.read_region(box, mpp=0.5)
