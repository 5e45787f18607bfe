"""Settings and results of an inference run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magnipath._errors import MagnipathError
from magnipath.types import Box


class InferError(MagnipathError):
    """An inference run cannot start as asked (settings, output folder)."""


@dataclass(frozen=True)
class InferConfig:
    """Settings of one inference run.

    Attributes
    ----------
    stride : int or None
        Window step in target (output) pixels, ``1..target size``; default the
        target size (no overlap, DMMN). Overlapping windows are blended with a
        raised-cosine weight.
    batch_size : int or "auto"
        Windows per forward pass; ``"auto"``: from the free GPU memory on CUDA
        (:func:`~magnipath.infer._batching.auto_batch_size`), 8 elsewhere.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    amp : bool
        Mixed precision: on CUDA bf16 where supported, else fp16; on a CPU with
        native bf16 (Intel AMX / AVX512-BF16) bf16 autocast with channels-last
        tensors; ignored elsewhere (float32). Labels agree with float32 on all
        but a few pixels near class boundaries (docs/inference.md).
    tissue_mask : bool
        Skip windows without tissue (Otsu mask, :mod:`magnipath.tissue`); their
        pixels get the fill label (the "Background" class, else the ignore index).
    min_tissue : float
        Keep a window when the tissue fraction of its target box exceeds this
        (0 <= min_tissue < 1; 0: any tissue).
    glass_background : bool
        After the model, give the pixels the tissue mask calls glass the fill label
        (needs ``tissue_mask``). Windows on the tissue's edge are predicted whole, and a
        model may call white glass fat; holes enclosed by tissue (fat lobules, lumina)
        count as tissue and are left to the model. Fat that reaches the glass is lost.
        Only the labels change; stored probabilities stay the model's.
    region : Box or None
        Level-0 ``(x, y, w, h)`` to predict; default the whole slide.
    probabilities : bool
        Also store per-class probabilities (uint8, probability * 255).
    workers : int
        Reader threads.
    overwrite : bool
        Replace a store that holds another run's result.
    chunk : int or None
        Output chunk side in target pixels (default ~1024; without overlap a
        multiple of the window).
    pipeline_depth : int or None
        Batches in flight on the device while the next one is prepared
        (default: 2 on CUDA, 0 elsewhere, where the forward is synchronous).
    compile : bool
        ``torch.compile`` the model (worth it on a GPU for long runs; the first
        batches pay the compile time).
    decode : str
        Where JPEG tiles are decoded: ``"cpu"`` (the slide reader, imagecodecs),
        ``"device"`` (raw tile bytes decoded in batches by
        ``torchvision.io.decode_jpeg`` on the run's device, nvJPEG on CUDA;
        slides whose tiles are not JPEG fall back to ``"cpu"``), or ``"auto"``
        (``"device"`` on CUDA, else ``"cpu"``). Pixels differ from the CPU
        decoder's by JPEG decoder rounding (docs/gpu.md).
    normalise_stain : bool
        Map the slide's H&E stain to the stain reference stored in the model
        card (Macenko; one fixed mapping per slide, measured on its tissue windows).
    """

    stride: int | None = None
    batch_size: int | str = 8
    device: str = "auto"
    amp: bool = True
    tissue_mask: bool = True
    min_tissue: float = 0.0
    glass_background: bool = False
    region: Box | None = None
    probabilities: bool = False
    workers: int = 2
    overwrite: bool = False
    chunk: int | None = None
    pipeline_depth: int | None = None
    compile: bool = False
    decode: str = "cpu"
    normalise_stain: bool = False

    def check(self, target_size: int) -> int:
        """Validate the settings for a model of ``target_size`` px; return the stride.

        Raises
        ------
        InferError
            Naming the bad setting and its valid range.
        """
        def whole(v) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        stride = target_size if self.stride is None else self.stride
        if not whole(stride) or not 1 <= stride <= target_size:
            raise InferError(f"stride {self.stride!r}: give a whole number of target pixels "
                             f"from 1 to the model's target size {target_size}")
        if self.batch_size != "auto" and (not whole(self.batch_size) or self.batch_size < 1):
            raise InferError(f"batch size {self.batch_size!r}: give a whole number >= 1 "
                             "or 'auto'")
        if self.pipeline_depth is not None and (not whole(self.pipeline_depth)
                                                or self.pipeline_depth < 0):
            raise InferError(f"pipeline depth {self.pipeline_depth!r}: give a whole number "
                             "of batches >= 0")
        if self.decode not in ("cpu", "device", "auto"):
            raise InferError(f"decode {self.decode!r}: choose 'cpu', 'device' or 'auto'")
        if not whole(self.workers) or self.workers < 1:
            raise InferError(f"workers {self.workers!r}: give a whole number of threads >= 1")
        if not 0.0 <= float(self.min_tissue) < 1.0:
            raise InferError(f"min_tissue {self.min_tissue!r}: give a fraction in [0, 1)")
        if self.glass_background and not self.tissue_mask:
            raise InferError("glass_background needs the tissue mask: drop --no-tissue-mask "
                             "or --glass-background")
        if self.chunk is not None and (not whole(self.chunk) or self.chunk < 16):
            raise InferError(f"chunk {self.chunk!r}: give a whole number of target pixels >= 16")
        return int(stride)


@dataclass
class InferResult:
    """What a run produced (paths and counts) and how fast it went.

    Attributes
    ----------
    store : Path
        The prediction store (``OUT/<slide>.zarr``).
    slide : Path
    out_shape : (int, int)
        Label map ``(height, width)`` in target pixels.
    target_mpp : float
        µm per label pixel.
    origin : (float, float)
        Level-0 ``(x, y)`` of label pixel ``(0, 0)``'s top-left corner.
    downsample : float
        Level-0 pixels per label pixel.
    n_windows, n_skipped : int
        Windows of the plan, and those skipped for lack of tissue.
    n_resumed_chunks : int
        Output chunks already finished by an earlier run (all of them when the
        store was complete: then nothing was recomputed).
    seconds : float
        Wall time of this call, end to end.
    windows_per_s : float
        Windows predicted in this call per second of ``seconds``.
    forward_seconds : float
        Time spent in the model (normalisation, forward, softmax/argmax).
    device : str
    timings : dict
        Stage times (s) and counts: ``setup_s``, ``tissue_s``, ``run_s``,
        ``pyramid_s``, ``forward_s``, ``read_s_summed_over_threads``,
        ``write_s``, ``windows_run``, ``chunks_written``.
    windows_run : int
        Window predictions made in this call (0 for a complete store).
    already_complete : bool
        The store was complete before this call; nothing was recomputed.
    stain_normalisation : dict or None
        With ``normalise_stain``: the slide's and the model's stain references.
    """

    store: Path
    slide: Path
    out_shape: tuple[int, int]
    target_mpp: float
    origin: tuple[float, float]
    downsample: float
    n_windows: int
    n_skipped: int
    n_resumed_chunks: int
    seconds: float
    windows_per_s: float
    forward_seconds: float
    device: str
    timings: dict = field(default_factory=dict)
    windows_run: int = 0
    already_complete: bool = False
    stain_normalisation: dict | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (paths as strings)."""
        d = asdict(self)
        d["store"], d["slide"] = str(self.store), str(self.slide)
        return d
