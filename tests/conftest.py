"""Shared session fixtures: small synthetic slides with ground truth, made once per session.

``synth_small``       4096 x 4096 px at 0.25 µm/px (40x), seed 1, zlib tiles (lossless,
                      so pixel-exact comparisons work).
``synth_small_jpeg``  the same slide with JPEG tiles (quality 90).

Both are :class:`magnipath.synth.SynthResult` objects: ``.slide`` (the pyramidal
TIFF), ``.truth`` / ``.partial`` / ``.mitoses`` (QuPath GeoJSON, level-0 px),
``.levels``, ``.n_objects``, ``.config``. Treat the files as read-only.
"""

from __future__ import annotations

import os

import pytest

import magnipath._napari  # noqa: F401 - hides triton from torch in this process (see its docstring)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (steadier timing on a shared 2-core machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = dict(width=4096, height=4096, mpp=0.25, seed=1)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """A 4096 x 4096 px synthetic slide at 0.25 µm/px, seed 1, zlib (lossless) tiles."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("synth_small")
    return synthesize(folder / "small.tif", SynthConfig(**SMALL, compression="zlib"))


@pytest.fixture(scope="session")
def synth_small_jpeg(tmp_path_factory):
    """The slide of ``synth_small`` with JPEG tiles (quality 90)."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("synth_small_jpeg")
    return synthesize(folder / "small.tif", SynthConfig(**SMALL, compression="jpeg", quality=90))


# -- QuPath: tests marked ``qupath`` run against the QuPath test double, and real QuPath -----------
def _qupath_params(flavours: tuple[str, ...] = ("0.5", "0.6")) -> list:
    """``qupath0.5-double``, ``qupath0.6-double``, plus ``real`` where paquo finds QuPath."""
    from qupath_bridge.project import qupath_available

    params = [pytest.param(f, id=f"qupath{f}-double") for f in flavours]
    if qupath_available()[0]:
        params.append(pytest.param("real", id="qupath-real"))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parameterise every test marked ``qupath`` over the QuPath flavours (``qupath_flavour``).

    ``@pytest.mark.qupath(flavours=("0.4", "0.5", "0.6"))`` chooses the doubles (default
    0.5 and 0.6, or ``MAGNIPATH_QUPATH_DOUBLES=0.4,0.5,0.6``; the 0.4-like double is opt-in).
    """
    marker = metafunc.definition.get_closest_marker("qupath")
    if marker is not None and "qupath_flavour" in metafunc.fixturenames:
        default = tuple(f for f in os.environ.get("MAGNIPATH_QUPATH_DOUBLES", "0.5,0.6")
                        .split(",") if f)
        flavours = tuple(marker.kwargs.get("flavours", default))
        metafunc.parametrize("qupath_flavour", _qupath_params(flavours), indirect=True)


@pytest.fixture
def qupath_flavour(request: pytest.FixtureRequest) -> str | None:
    """``"0.5"`` / ``"0.6"`` (the double), ``"real"`` (installed QuPath) or ``None`` (unmarked)."""
    return getattr(request, "param", None)


@pytest.fixture(autouse=True)
def _qupath_backend(qupath_flavour):
    """Install the QuPath double (tests/_qupath_double) for the test's flavour.

    Yields the double's namespace (``hooks``, ``world``...) or ``None`` (real QuPath or an
    unmarked test); fixtures and tests reach it as ``qupath_double``.
    """
    if qupath_flavour in (None, "real"):
        yield None
        return
    from _qupath_double import installed

    with installed(qupath_flavour) as ns:
        yield ns


@pytest.fixture
def qupath_double(_qupath_backend):
    """The installed QuPath double's namespace (skips the test on real QuPath)."""
    if _qupath_backend is None:
        pytest.skip("runs only against the QuPath test double")
    return _qupath_backend
