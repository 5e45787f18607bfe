"""Bad slide files fail with a SlideError naming the file, at open or at read time."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from magnipath._errors import MagnipathError, SlideError
from magnipath.slide import open_slide

from ._files import pyramid, textured, write_generic


def test_random_bytes_named_tif(tmp_path):
    path = tmp_path / "random.tif"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(SlideError) as info:
        open_slide(path, mpp=0.25)
    assert str(path) in str(info.value)
    assert isinstance(info.value, MagnipathError)


@pytest.mark.parametrize("compression", ["zlib", "jpeg"])
def test_truncated_to_half(tmp_path, compression):
    full = write_generic(tmp_path / "full.tif", pyramid(textured(512, 640), 3),
                         compression=compression, resolution=40000.0)
    data = full.read_bytes()
    path = tmp_path / "half.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError) as info:
        s = open_slide(path)
        s.read_region((0, 0, 640, 512))  # in case opening alone succeeded
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


def test_corrupt_tile_fails_at_read_time(tmp_path):
    path = write_generic(tmp_path / "c.tif", pyramid(textured(512, 512), 2), tile=128,
                         compression="zlib", resolution=40000.0)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        offset, count = page.dataoffsets[5], page.databytecounts[5]  # tile row 1, column 1
    raw = bytearray(path.read_bytes())
    raw[offset:offset + count] = np.random.default_rng(1).integers(
        0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    with open_slide(path) as s:  # the structure is intact: opening works
        ok = s.read_region((0, 0, 128, 128))
        assert ok.shape == (128, 128, 3)
        with pytest.raises(SlideError) as info:
            s.read_region((128, 128, 64, 64))
        assert str(path) in str(info.value)
        assert "corrupt" in str(info.value)
        with pytest.raises(SlideError):  # a failed decode is not cached as success
            s.read_region((100, 100, 64, 64))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SlideError, match="no such file"):
        open_slide(tmp_path / "absent.tif")
    with pytest.raises(SlideError, match="folder"):
        open_slide(tmp_path)


def test_sixteen_bit_slides_are_refused_clearly(tmp_path):
    path = tmp_path / "u16.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint16), photometric="rgb",
                     resolution=(40000.0, 40000.0), resolutionunit="CENTIMETER")
    with pytest.raises(SlideError, match="8-bit"):
        open_slide(path)


def test_unknown_backend(tmp_path):
    path = write_generic(tmp_path / "b.tif", [textured(64, 64)], resolution=40000.0)
    with pytest.raises(SlideError, match="backend"):
        open_slide(path, backend="bioformats")  # type: ignore[arg-type]
