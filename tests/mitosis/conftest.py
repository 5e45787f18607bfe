"""Small synthetic slides with mitoses and their tiles, made once per session."""

from __future__ import annotations

import pytest
import torch

from magnipath.mitosis import MitosisSource, TileConfig, make_tiles
from magnipath.synth import SynthConfig, make_layout, synthesize


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _configs(n: int, min_mitoses: int = 6) -> list[SynthConfig]:
    """The first ``n`` seeds whose 1536 px layout holds at least ``min_mitoses`` mitoses."""
    out = []
    for seed in range(200):
        cfg = SynthConfig(width=1536, height=1536, seed=seed, density=6.0,
                          mitoses_per_mm2=1500.0, tile=256)
        if len(make_layout(cfg).mitoses) >= min_mitoses:
            out.append(cfg)
            if len(out) == n:
                return out
    raise RuntimeError("no synthetic layout with mitoses found; the synth generator changed")


@pytest.fixture(scope="session")
def mitosis_slides(tmp_path_factory):
    """Two synthetic 40x slides with mitoses: MitosisSource(slide, NAME.mitoses.geojson)."""
    folder = tmp_path_factory.mktemp("mitosis_slides")
    out = []
    for cfg in _configs(2):
        r = synthesize(folder / f"m{cfg.seed}.tif", cfg)
        out.append(MitosisSource(r.slide, r.mitoses))
    return out


@pytest.fixture(scope="session")
def tiles(mitosis_slides):
    """64 px tiles of both slides (positive where exp(-0.1 d) > 0.5)."""
    return (make_tiles(mitosis_slides[:1], TileConfig(tile=64)),
            make_tiles(mitosis_slides[1:], TileConfig(tile=64)))
