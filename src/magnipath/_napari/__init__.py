"""The napari face of MagniPath: the only subpackage that imports napari or Qt.

Importing this package hides ``triton`` from torch. torch's CUDA wheels import
triton (which bundles its own LLVM) as soon as ``torch._dynamo`` loads, e.g.
through timm or segmentation-models-pytorch; in a process where napari has
already made an OpenGL context on Mesa's llvmpipe (any machine without a GPU
driver, Xvfb included) the two LLVMs clash and the process dies with a
segmentation fault. MagniPath never uses triton (no ``torch.compile``), so it
is safe to mark it absent before torch looks for it.
"""

import sys

if "triton" not in sys.modules:  # pragma: no branch - see the module docstring
    sys.modules["triton"] = None  # type: ignore[assignment]
