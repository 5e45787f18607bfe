"""The pipelined engine on a CPU: order, depth, cancel + resume, errors in its threads,
device JPEG decoding (torchvision's decoder on the CPU) and ``--batch-size auto``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from magnipath._errors import Cancelled, SlideError
from magnipath.infer import InferConfig, infer_slide, open_prediction
from magnipath.infer._config import InferError
from magnipath.infer._pipeline import HostRing, Stitcher
from magnipath.slide import open_slide

from .conftest import INTENSITY_CLASSES, IntensityNet, intensity_classes, make_card


def _labels(store) -> np.ndarray:
    root, _ = open_prediction(store)
    return np.asarray(root["labels/0"][:])


def _probs(store) -> np.ndarray:
    root, _ = open_prediction(store)
    return np.asarray(root["probabilities/0"][:])


@pytest.fixture(scope="module")
def jpeg_slide(tmp_path_factory):
    """A 1024 x 512 px synthetic slide at 0.25 µm/px (40x), JPEG tiles, with a pyramid."""
    from magnipath.synth import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("jpeg_slide")
    return synthesize(folder / "jpeg.tif", SynthConfig(width=1024, height=512, mpp=0.25, seed=3,
                                                       compression="jpeg", quality=90)).slide


def _model(mpp: float = 1.0, size: int = 32):
    from magnipath.geometry import TileGeometry

    return IntensityNet(), make_card(INTENSITY_CLASSES, TileGeometry.single(mpp, size))


def _magnipath_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("magnipath-stitch")]


@pytest.mark.parametrize("probabilities", [False, True])
def test_deep_pipeline_keeps_batch_order(infer_slide_file, tmp_path, probabilities):
    """Batches in flight, reader threads and overlap blending: the same result as depth 0."""
    region = (0.0, 0.0, 1200.0, 500.0)
    common = dict(region=region, batch_size=3, workers=4, chunk=64, stride=24,
                  probabilities=probabilities, tissue_mask=False)
    a = infer_slide(infer_slide_file.slide, _model(), tmp_path / "a",
                    InferConfig(pipeline_depth=0, **common))
    b = infer_slide(infer_slide_file.slide, _model(), tmp_path / "b",
                    InferConfig(pipeline_depth=3, **common))
    assert b.timings["depth"] == 3 and b.timings["batches"] == a.timings["batches"] > 10
    np.testing.assert_array_equal(_labels(a.store), _labels(b.store))
    if probabilities:
        np.testing.assert_array_equal(_probs(a.store), _probs(b.store))
    with open_slide(infer_slide_file.slide) as s:
        whole = s.read_region(region, mpp=1.0, out_shape=a.out_shape)
    np.testing.assert_array_equal(_labels(b.store), intensity_classes(whole))
    for key in ("read_wait_s", "collate_s", "launch_s", "retire_wait_s", "stitch_s", "write_s"):
        assert b.timings[key] >= 0.0


def test_cancel_with_batches_in_flight_then_resume_equals_a_full_run(infer_slide_file,
                                                                     tmp_path):
    cfg = InferConfig(chunk=64, batch_size=4, pipeline_depth=3, tissue_mask=False)
    model = _model()  # one card: its digest (creation time included) is in the run signature
    full = infer_slide(infer_slide_file.slide, model, tmp_path / "full", cfg)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 6

    events = []
    with pytest.raises(Cancelled):
        infer_slide(infer_slide_file.slide, model, tmp_path / "cut", cfg, cancel=cancel,
                    progress=events.append)
    # the 6 launched batches were retired (stitched) before the cancel was raised
    assert [e.done for e in events if e.stage == "infer"][-1] == 6 * 4
    assert not _magnipath_threads()
    resumed = infer_slide(infer_slide_file.slide, model, tmp_path / "cut", cfg)
    assert 0 < resumed.n_resumed_chunks and resumed.windows_run < full.windows_run
    np.testing.assert_array_equal(_labels(full.store), _labels(resumed.store))


def test_a_failing_read_in_a_reader_thread_surfaces_once_and_stops_the_threads(jpeg_slide,
                                                                             tmp_path):
    import shutil

    import tifffile

    bad = tmp_path / "bad.tif"
    shutil.copy(jpeg_slide, bad)
    with tifffile.TiffFile(bad) as tif:
        page = tif.pages[0]
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
    i = len(offsets) // 2
    with open(bad, "r+b") as f:  # garbage over the middle of one tile's JPEG stream
        f.seek(offsets[i] + 2)
        f.write(b"\xff\xd9" + b"\x00" * (counts[i] - 4))
    for decode in ("cpu", "device"):
        cfg = InferConfig(batch_size=2, workers=3, pipeline_depth=2, tissue_mask=False,
                          decode=decode)
        with pytest.raises(SlideError, match="tile"):
            infer_slide(bad, _model(0.25, 64), tmp_path / decode, cfg)
        assert not _magnipath_threads()


def test_stitcher_error_is_raised_once_and_never_blocks_the_producer():
    seen = []

    def stitch(keys, out):
        if keys[0] == 3:
            raise OSError("disk full")
        time.sleep(0.001)
        seen.append(keys[0])

    st = Stitcher(stitch, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for k in range(50):
            st.put([k], np.zeros(1))
    st.close()  # the error was raised already: not again
    assert seen == [0, 1, 2]


def test_stitcher_keeps_order_and_close_raises_a_late_error():
    seen = []

    def stitch(keys, out):
        seen.append(keys[0])
        if keys[0] == 9:
            raise ValueError("late")

    st = Stitcher(stitch, depth=2)
    for k in range(10):
        st.put([k], np.zeros(1))
    with pytest.raises(ValueError, match="late"):
        st.close()
    assert seen == list(range(10))


def test_host_ring_hands_out_its_slots_round_robin():
    ring = HostRing(3, (2, 1, 4, 4, 3), pin=False)
    got = [ring.take() for _ in range(6)]
    assert [id(g) for g in got[:3]] == [id(g) for g in got[3:]]
    assert len({id(g) for g in got}) == 3 and got[0].dtype == torch.uint8


# -- device JPEG decoding -------------------------------------------------------------------
def test_device_jpeg_reads_equal_the_slide_reader_on_exact_reads(jpeg_slide):
    from magnipath.geometry import TileGeometry
    from magnipath.infer import WindowReader
    from magnipath.infer._jpeg import JpegBatchReader, jpeg_levels_supported

    with open_slide(jpeg_slide) as s:
        assert jpeg_levels_supported(s) is None
        for g in (TileGeometry.dmmn(0.5, 64), TileGeometry.single(0.25, 64)):
            d = g.target_mpp / s.mpp
            jr = JpegBatchReader(s, g, (0.0, 0.0), d, torch.device("cpu"))
            wr = WindowReader(s, g, (0.0, 0.0), d, 1)
            wins = [(r, c) for r in range(-32, 256, 96) for c in range(0, 512, 160)]
            try:
                a = jr.read_batch(wins).numpy()
                b = np.stack([wr.read(r, c) for r, c in wins])
            finally:
                jr.close()
                wr.close()
            # same libjpeg-turbo decoder on a CPU, integer block means: identical
            np.testing.assert_array_equal(a, b)
            assert a[:4, 0, :16].max() == 0  # the first row of windows starts above the slide


def test_device_jpeg_off_grid_reads_are_close_to_the_slide_reader(jpeg_slide):
    from magnipath.geometry import TileGeometry
    from magnipath.infer import WindowReader
    from magnipath.infer._jpeg import JpegBatchReader

    g = TileGeometry.single(0.6, 48)  # 2.4 level-0 px per output px: Pillow-style filter
    with open_slide(jpeg_slide) as s:
        d = g.target_mpp / s.mpp
        jr = JpegBatchReader(s, g, (3.3, 1.7), d, torch.device("cpu"))
        wr = WindowReader(s, g, (3.3, 1.7), d, 1)
        wins = [(r, c) for r in range(0, 200, 48) for c in range(0, 400, 96)]
        a = jr.read_batch(wins).numpy().astype(int)
        b = np.stack([wr.read(r, c) for r, c in wins]).astype(int)
        jr.close()
        wr.close()
    diff = np.abs(a - b)
    assert diff.mean() < 0.5 and (diff > 2).mean() < 0.01


def test_infer_with_device_decode_equals_cpu_decode(jpeg_slide, tmp_path):
    cfg = dict(batch_size=4, tissue_mask=False, chunk=64)
    a = infer_slide(jpeg_slide, _model(0.5, 32), tmp_path / "a", InferConfig(decode="cpu", **cfg))
    b = infer_slide(jpeg_slide, _model(0.5, 32), tmp_path / "b",
                    InferConfig(decode="device", pipeline_depth=2, **cfg))
    assert b.timings["decode"] == "device" and b.timings["tiles_decoded"] > 0
    assert "decode" not in a.timings
    np.testing.assert_array_equal(_labels(a.store), _labels(b.store))


def test_device_decode_falls_back_to_the_cpu_reader_for_other_codecs(infer_slide_file,
                                                                     tmp_path):
    res = infer_slide(infer_slide_file.slide, _model(), tmp_path,  # zlib tiles
                      InferConfig(decode="device", tissue_mask=False, region=(0, 0, 400, 200)))
    assert "decode" not in res.timings and res.windows_run > 0


# -- settings -------------------------------------------------------------------------------
def test_batch_size_auto_is_the_cpu_default_on_a_cpu(infer_slide_file, tmp_path):
    res = infer_slide(infer_slide_file.slide, _model(), tmp_path,
                      InferConfig(batch_size="auto", tissue_mask=False,
                                  region=(0, 0, 400, 200)))
    assert res.timings["batch_size"] == 8


@pytest.mark.parametrize("field,value,match", [("batch_size", "big", "batch size"),
                                               ("pipeline_depth", -1, "pipeline depth"),
                                               ("decode", "gpu", "decode")])
def test_bad_pipeline_settings_are_refused(field, value, match):
    with pytest.raises(InferError, match=match):
        InferConfig(**{field: value}).check(32)


def test_cli_takes_batch_size_auto_and_device_decode(jpeg_slide, tmp_path, capsys):
    import json

    from magnipath.cli import main
    from magnipath.geometry import TileGeometry
    from magnipath.synth import SYNTH_CLASSES

    from .conftest import constant_model_dir

    model = constant_model_dir(tmp_path / "m", SYNTH_CLASSES.index_of("TLS"),
                               classes=SYNTH_CLASSES, geometry=TileGeometry.single(1.0, 64))
    code = main(["infer", str(jpeg_slide), "--model", str(model), "--out", str(tmp_path / "p"),
                 "--batch-size", "auto", "--decode", "device", "--no-tissue-mask", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    (entry,) = json.loads(out)["slides"]
    assert entry["windows_run"] == 8  # 256 x 128 label px at 1 µm/px in 64 px windows
    with pytest.raises(SystemExit):
        main(["infer", str(jpeg_slide), "--model", str(model), "--batch-size", "many"])


def test_device_decode_of_rgb_colour_space_jpeg_tiles_equals_the_slide_reader(tmp_path):
    """Aperio-style tiles: JPEG in the RGB colour space (TIFF photometric RGB)."""
    import tifffile

    from magnipath.geometry import TileGeometry
    from magnipath.infer import WindowReader
    from magnipath.infer._jpeg import JpegBatchReader, jpeg_levels_supported

    rng = np.random.default_rng(0)
    img = np.empty((512, 512, 3), np.uint8)
    img[...] = (200, 50, 120)
    img[::5] = rng.integers(0, 256, (103, 512, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, img, tile=(256, 256), compression="jpeg", photometric="rgb",
                     compressionargs={"level": 90, "outcolorspace": "rgb"},
                     resolution=(40000, 40000), resolutionunit="CENTIMETER")
    g = TileGeometry.single(0.25, 64)
    with open_slide(path) as s:
        assert s._pages[0].keyframe.photometric == 2  # RGB, not YCbCr
        assert jpeg_levels_supported(s) is None
        jr = JpegBatchReader(s, g, (0.0, 0.0), 1.0, torch.device("cpu"))
        wr = WindowReader(s, g, (0.0, 0.0), 1.0, 1)
        wins = [(r, c) for r in range(0, 512, 96) for c in range(0, 512, 160)]
        try:
            np.testing.assert_array_equal(jr.read_batch(wins).numpy(),
                                          np.stack([wr.read(r, c) for r, c in wins]))
        finally:
            jr.close()
            wr.close()
