"""Batched JPEG decoding on the run's device: raw tile bytes in, window inputs out.

For TIFF slides whose tiles are JPEG, :class:`JpegBatchReader` reads the raw
tile bytes (no CPU decode), decodes all tiles a batch needs with one
``torchvision.io.decode_jpeg`` call on the device (nvJPEG on CUDA; libjpeg-turbo
on a CPU, so the same code runs in tests), pastes them into the windows'
source regions and resamples there:

* exact reads (an integer number ``k`` of level pixels per output pixel, on
  the level's grid, the usual case of pyramids of power-of-two levels) are
  ``k x k`` block means rounded half up, exactly as
  :func:`magnipath.slide._resample.box_reduce`;
* other reads use ``torch.nn.functional.interpolate`` (bilinear, antialiased),
  which differs from :func:`~magnipath.slide._resample.resize_box` by a few
  grey levels.

Frames: boxes are level-0 pixels, windows ``(row, col)`` output pixels
(target mpp) as in :mod:`magnipath.infer._windows`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from magnipath._errors import SlideError
from magnipath.geometry import TileGeometry

__all__ = ["JpegBatchReader", "jpeg_levels_supported"]

_JPEG = {6, 7, 33007, 34892}
_ALIGN_TOLERANCE = 1e-3
_EXACT_TOLERANCE = 1e-6


def jpeg_levels_supported(slide) -> str | None:
    """None when every level of ``slide`` is tiled 8-bit RGB JPEG in a TIFF, else why not."""
    pages = getattr(slide, "_pages", None)
    if pages is None:
        return f"{type(slide).__name__} gives no raw tiles (only TIFF slides read by tifffile)"
    for i, page in enumerate(pages):
        key = page.keyframe
        if key.compression not in _JPEG:
            return f"level {i} is not JPEG-compressed (compression {int(key.compression)})"
        if not key.is_tiled:
            return f"level {i} is stored in strips, not tiles"
        if key.samplesperpixel != 3 or key.bitspersample != 8 or key.planarconfig != 1:
            return f"level {i} is not interleaved 8-bit RGB"
    try:
        _torchvision_io()
    except ImportError:
        return "torchvision is not installed"
    return _probe_colours(pages[0])


def _probe_colours(page) -> str | None:
    """None when torchvision decodes the level's first stored tile to tifffile's pixels.

    A JPEG stream does not always say its colour space (Aperio's RGB tiles carry
    no JFIF/Adobe marker; tifffile knows it from the TIFF tags and tells the
    decoder, torchvision cannot), so one tile is decoded both ways first; more
    than decoder rounding apart means "decode on the CPU".
    """
    import numpy as np
    import torch

    ImageReadMode, decode_jpeg = _torchvision_io()
    key = page.keyframe
    fh = page.parent.filehandle
    stored = [i for i, (off, n) in enumerate(zip(page.dataoffsets, page.databytecounts,
                                                   strict=True)) if off and n]
    if not stored:
        return None  # no stored tile: nothing to decode either way
    index = stored[0]
    off, n = page.dataoffsets[index], page.databytecounts[index]
    with page.parent.filehandle.lock:
        fh.seek(off)
        data = fh.read(n)
    ref, _, _ = key.decode(data, index, jpegtables=page.jpegtables, jpegheader=key.jpegheader)
    ref = np.asarray(ref).reshape(ref.shape[-3:])[..., :3]
    tables = page.jpegtables
    full = bytes(tables)[:-2] + data[2:] if tables and len(tables) > 4 else data
    try:
        img = decode_jpeg(torch.frombuffer(bytearray(full), dtype=torch.uint8),
                          mode=ImageReadMode.RGB)
    except RuntimeError as e:
        return f"torchvision cannot decode its tiles ({e})"
    got = img.permute(1, 2, 0).numpy()
    if got.shape != ref.shape or np.abs(got.astype(int) - ref.astype(int)).mean() > 1.0:
        return ("torchvision decodes its tiles to other colours than tifffile (a JPEG "
                "colour space the stream does not state)")
    return None


def _torchvision_io():
    """``(ImageReadMode, decode_jpeg)`` of torchvision (its deprecation notice of image
    decoding in favour of torchcodec, from 0.29, silenced: the API is there up to now)."""
    import warnings

    # a filter, not catch_warnings (not thread-safe); re-adding it replaces the same one
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities "
                            "of TorchVision", category=DeprecationWarning)
    from torchvision.io import ImageReadMode, decode_jpeg

    return ImageReadMode, decode_jpeg


def _filter_matrix(in0: float, in1: float, in_size: int, out_size: int, device):
    """``(out_size, in_size)`` float32 weights of Pillow's resampling of ``[in0, in1)``.

    Pillow's coefficients (``Resample.c``: box filter when downscaling, bilinear
    when upscaling, support scaled by the downscale factor, weights normalised
    per output pixel), so the device path reproduces
    :func:`magnipath.slide._resample.resize_box` up to Pillow's fixed-point rounding.
    """
    import numpy as np
    import torch

    scale = (in1 - in0) / out_size
    box = max((in1 - in0) / out_size, 0) >= 1.0
    fscale = max(scale, 1.0)
    support = (0.5 if box else 1.0) * fscale
    m = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = in0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        x = (np.arange(xmin, xmax) - center + 0.5) / fscale
        if box:
            wgt = ((x > -0.5) & (x <= 0.5)).astype(np.float64)
        else:
            wgt = np.clip(1.0 - np.abs(x), 0.0, None)
        total = wgt.sum()
        if total > 0:
            m[xx, xmin:xmax] = wgt / total
    return torch.from_numpy(m.astype(np.float32)).to(device)


class _Level:
    """Raw tiles of one TIFF level: offsets, sizes, JPEG tables, tile grid."""

    def __init__(self, page, fd: int) -> None:
        key = page.keyframe
        self.fd = fd
        self.height, self.width = int(key.imagelength), int(key.imagewidth)
        self.th, self.tw = int(key.tilelength), int(key.tilewidth)
        self.n_x = math.ceil(self.width / self.tw)
        self.offsets = [int(v) for v in page.dataoffsets]
        self.counts = [int(v) for v in page.databytecounts]
        tables = page.jpegtables
        self.tables = bytes(tables) if tables else None

    def raw(self, index: int) -> bytes | None:
        """A complete JPEG stream of tile ``index`` (tables merged in), None when empty."""
        off, n = self.offsets[index], self.counts[index]
        if n == 0 or off == 0:
            return None
        data = os.pread(self.fd, n, off)
        if self.tables is not None and len(self.tables) > 4:
            # abbreviated stream: tables' SOI..(without EOI) + the tile after its SOI
            data = self.tables[:-2] + data[2:]
        return data


class JpegBatchReader:
    """Reads batches of window inputs by decoding JPEG tiles on ``device``.

    Parameters
    ----------
    slide : magnipath.slide.TiffSlide
        An open TIFF slide whose levels are JPEG (:func:`jpeg_levels_supported`).
    geometry : TileGeometry
    origin : (float, float)
        Level-0 ``(x, y)`` of output pixel ``(0, 0)``.
    d : float
        Level-0 pixels per output pixel.
    device : torch.device
        Where tiles are decoded and windows assembled.
    workers : int
        Batches prepared ahead in threads (raw reads release the GIL; decoding
        on CUDA is asynchronous).
    """

    def __init__(self, slide, geometry: TileGeometry, origin: tuple[float, float], d: float,
                 device, workers: int = 2) -> None:
        why = jpeg_levels_supported(slide)
        if why is not None:
            raise ValueError(f"{slide.path}: device JPEG decoding is not possible: {why}")
        self.slide, self.geometry, self.origin, self.d = slide, geometry, origin, d
        self.device = device
        self.workers = max(1, int(workers))
        self._fd = os.open(slide.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.levels = [_Level(p, self._fd) for p in slide._pages]
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="magnipath-jpeg")
        self._lock = threading.Lock()
        self._local = threading.local()
        self.read_s = 0.0  # raw byte reads, summed over threads
        self.decode_s = 0.0  # decode call (on CUDA: until the decoded tiles are ready)
        self.assemble_s = 0.0
        self.n_read = 0
        self.n_tiles = 0
        self.n_fallback = 0  # batches that nvJPEG refused (decoded on the CPU instead)

    # -- geometry -------------------------------------------------------------------------
    def target_box(self, row: int, col: int):
        """Level-0 ``(x, y, w, h)`` of the window at output pixel ``(row, col)``."""
        side = self.geometry.target_size * self.d
        return (self.origin[0] + col * self.d, self.origin[1] + row * self.d, side, side)

    def _plan(self, box, mpp: float, size: int) -> tuple:
        """``(level, iy0, ix0, h, w, k, window)`` of one input read: the level region and
        either the block factor ``k`` (exact) or the resampling window (``k = 0``)."""
        s = self.slide
        x, y = float(box[0]), float(box[1])
        dd = mpp / s.mpp
        level = s.best_level(dd)
        ds = level.downsample
        f = dd / ds
        xs, ys = x / ds, y / ds
        k = round(f)
        on_grid = (abs(xs - round(xs)) < _ALIGN_TOLERANCE
                   and abs(ys - round(ys)) < _ALIGN_TOLERANCE)
        if k >= 1 and abs(f - k) <= _EXACT_TOLERANCE * k and on_grid:
            return (level.index, round(ys), round(xs), size * k, size * k, k, None)
        margin = math.ceil(f) + 1
        ix0, iy0 = math.floor(xs) - margin, math.floor(ys) - margin
        ix1, iy1 = math.ceil(xs + size * f) + margin, math.ceil(ys + size * f) + margin
        window = (xs - ix0, ys - iy0, xs - ix0 + size * f, ys - iy0 + size * f)
        return (level.index, iy0, ix0, iy1 - iy0, ix1 - ix0, 0, window)

    def _tiles_of(self, lv: int, y0: int, x0: int, h: int, w: int) -> list[int]:
        L = self.levels[lv]
        ya, yb = max(y0, 0), min(y0 + h, L.height)
        xa, xb = max(x0, 0), min(x0 + w, L.width)
        if ya >= yb or xa >= xb:
            return []
        return [ty * L.n_x + tx for ty in range(ya // L.th, (yb - 1) // L.th + 1)
                for tx in range(xa // L.tw, (xb - 1) // L.tw + 1)]

    # -- reading --------------------------------------------------------------------------
    def read_batch(self, windows: list[tuple[int, int]]):
        """Inputs of windows ``[(row, col), ...]``: uint8 ``(n, n_inputs, S, S, 3)`` on the
        device, zero outside the slide."""
        import torch

        g = self.geometry
        size = g.target_size
        plans = []
        for row, col in windows:
            boxes = g.input_boxes(self.target_box(row, col), self.slide.mpp)
            plans.append([self._plan(b, inp.mpp, size)
                          for b, inp in zip(boxes, g.inputs, strict=True)])
        need = sorted({(p[0], t) for ps in plans for p in ps for t in self._tiles_of(*p[:5])})
        if self.device.type == "cuda":
            # this thread's own stream: decoding overlaps the forward on the compute stream
            stream = getattr(self._local, "stream", None)
            if stream is None:
                stream = self._local.stream = torch.cuda.Stream(self.device)
            with torch.cuda.stream(stream):
                out = self._read(windows, plans, need)
            stream.synchronize()  # only this stream: the batch is complete when returned
            return out
        return self._read(windows, plans, need)

    def _read(self, windows, plans, need):
        import torch

        ImageReadMode, decode_jpeg = _torchvision_io()
        g = self.geometry
        size = g.target_size
        t0 = time.perf_counter()
        raws = [self.levels[lv].raw(t) for lv, t in need]
        t1 = time.perf_counter()
        present = [i for i, r in enumerate(raws) if r is not None]
        decoded: dict[tuple[int, int], torch.Tensor] = {}
        if present:
            data = [torch.frombuffer(bytearray(raws[i]), dtype=torch.uint8) for i in present]
            try:
                imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:
                # a stream the batched decoder refuses (nvJPEG: an unusual sampling; or a
                # damaged tile): one by one with libjpeg-turbo, naming a damaged tile
                imgs = []
                for i, x in zip(present, data, strict=True):
                    try:
                        imgs.append(decode_jpeg(x, mode=ImageReadMode.RGB).to(self.device))
                    except RuntimeError as e:
                        lv, t = need[i]
                        raise SlideError(f"{self.slide.path}: tile {t} of level {lv} cannot be "
                                         f"decoded ({e}); the file is corrupt or "
                                         "truncated.") from e
                self.n_fallback += 1
            for i, img in zip(present, imgs, strict=True):
                decoded[need[i]] = img
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # this thread's stream
        t2 = time.perf_counter()
        out = torch.zeros((len(windows), g.n_inputs, size, size, 3), dtype=torch.uint8,
                          device=self.device)
        for j in range(g.n_inputs):
            # exact reads of one input share level, size and factor: a few ops per batch
            groups: dict[tuple, list[int]] = {}
            for i, ps in enumerate(plans):
                p = ps[j]
                if p[5] >= 1:
                    groups.setdefault((p[0], p[3], p[4], p[5]), []).append(i)
                else:
                    out[i, j] = self._assemble(p, decoded, size)
            for (lv, h, w, k), rows in groups.items():
                idx = torch.as_tensor(rows, device=self.device)
                out[idx, j] = self._assemble_exact(lv, h, w, k, [plans[i][j] for i in rows],
                                                   decoded, size)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        t3 = time.perf_counter()
        with self._lock:
            self.read_s += t1 - t0
            self.decode_s += t2 - t1
            self.assemble_s += t3 - t2
            self.n_read += len(windows)
            self.n_tiles += len(need)
        return out

    def _assemble_exact(self, lv: int, h: int, w: int, k: int, plans: list, decoded: dict,
                        size: int):
        """``(n, S, S, 3)`` uint8 inputs of ``n`` exact reads of level ``lv`` (regions
        ``h x w`` level px, factor ``k``): tiles gathered into per-region mosaics, cropped,
        masked outside the level, ``k x k`` block means (halves up) in integers."""
        import numpy as np
        import torch

        L = self.levels[lv]
        dev = self.device
        keys = [t for (lvl, t) in decoded if lvl == lv]
        pos = {t: i + 1 for i, t in enumerate(keys)}  # 0: the zero tile
        zero = torch.zeros((1, L.th, L.tw, 3), dtype=torch.uint8, device=dev)
        tiles = [decoded[(lv, t)].permute(1, 2, 0) for t in keys]
        tiles = [x if x.shape[:2] == (L.th, L.tw) else torch.nn.functional.pad(
            x, (0, 0, 0, L.tw - x.shape[1], 0, L.th - x.shape[0])) for x in tiles]
        T = torch.cat([zero, torch.stack(tiles)]) if tiles else zero
        n = len(plans)
        R, C = (h + L.th - 1) // L.th + 1, (w + L.tw - 1) // L.tw + 1
        n_y = math.ceil(L.height / L.th)
        ids = np.zeros((n, R, C), np.int64)
        y0 = np.array([p[1] for p in plans], np.int64)
        x0 = np.array([p[2] for p in plans], np.int64)
        ty0, tx0 = y0 // L.th, x0 // L.tw  # floor, also for negative corners
        for r in range(n):
            for a in range(R):
                ty = ty0[r] + a
                if not 0 <= ty < n_y:
                    continue
                for b in range(C):
                    tx = tx0[r] + b
                    if 0 <= tx < L.n_x:
                        ids[r, a, b] = pos.get(int(ty * L.n_x + tx), 0)
        m = T[torch.from_numpy(ids).to(dev)]  # (n, R, C, th, tw, 3)
        m = m.permute(0, 1, 3, 2, 4, 5).reshape(n, R * L.th, C * L.tw, 3)
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        oy = torch.from_numpy(y0 - ty0 * L.th).to(dev)
        ox = torch.from_numpy(x0 - tx0 * L.tw).to(dev)
        rows, cols = oy[:, None] + ar_h, ox[:, None] + ar_w  # (n, h), (n, w) in the mosaic
        crop = m[torch.arange(n, device=dev)[:, None, None], rows[:, :, None],
                 cols[:, None, :]]  # (n, h, w, 3)
        ly = torch.from_numpy(y0).to(dev)[:, None] + ar_h
        lx = torch.from_numpy(x0).to(dev)[:, None] + ar_w
        valid = (((ly >= 0) & (ly < L.height))[:, :, None]
                 & ((lx >= 0) & (lx < L.width))[:, None, :])
        crop = crop * valid[..., None].to(torch.uint8)
        if k == 1:
            return crop
        total = crop.view(n, size, k, size, k, 3).sum(dim=(2, 4), dtype=torch.int32)
        return ((total + (k * k) // 2) // (k * k)).to(torch.uint8)

    def _assemble(self, plan: tuple, decoded: dict, size: int):
        """One input ``(S, S, 3)`` uint8 from its level region (see :meth:`_plan`)."""
        import torch

        lv, y0, x0, h, w, k, window = plan
        L = self.levels[lv]
        region = torch.zeros((3, h, w), dtype=torch.uint8, device=self.device)
        for t in self._tiles_of(lv, y0, x0, h, w):
            ty0, tx0 = (t // L.n_x) * L.th, (t % L.n_x) * L.tw
            sy0, sy1 = max(y0, ty0, 0), min(y0 + h, ty0 + L.th, L.height)
            sx0, sx1 = max(x0, tx0, 0), min(x0 + w, tx0 + L.tw, L.width)
            tile = decoded.get((lv, t))
            if tile is None or sy0 >= sy1 or sx0 >= sx1:
                continue
            region[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = \
                tile[:, sy0 - ty0:sy1 - ty0, sx0 - tx0:sx1 - tx0]
        if k == 1:
            res = region
        elif k > 1:  # k x k block means, halves rounded up (integer arithmetic: exact)
            total = region.to(torch.int32).view(3, size, k, size, k).sum(dim=(2, 4))
            res = ((total + (k * k) // 2) // (k * k)).to(torch.uint8)
        else:  # Pillow's two-pass filter (box down, bilinear up), as resize_box
            wx0, wy0, wx1, wy1 = window
            wx = _filter_matrix(wx0, wx1, w, size, self.device)
            wy = _filter_matrix(wy0, wy1, h, size, self.device)
            tmp = torch.floor(region.float() @ wx.T + 0.5).clamp(0, 255)  # (3, h, S)
            res = torch.floor(wy @ tmp + 0.5).clamp(0, 255).to(torch.uint8)
        return res.permute(1, 2, 0)

    def submit_batch(self, windows: list[tuple[int, int]]) -> Future:
        """Schedule :meth:`read_batch`; returns its future."""
        return self.pool.submit(self.read_batch, windows)

    def target_boxes(self, windows):
        """``(N, 4)`` level-0 boxes of ``(N, 2)`` window corners (see WindowReader)."""
        import numpy as np

        w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
        side = self.geometry.target_size * self.d
        return np.column_stack([self.origin[0] + w[:, 1] * self.d,
                                self.origin[1] + w[:, 0] * self.d,
                                np.full(len(w), side), np.full(len(w), side)])

    def close(self) -> None:
        """Stop the threads and close the file."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
