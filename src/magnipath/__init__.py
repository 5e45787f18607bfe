"""MagniPath: multi-magnification deep learning for whole-slide images.

The core (this package minus ``magnipath._napari``) never imports napari or Qt
and never prints; long work reports progress through callbacks
(:mod:`magnipath.progress`).

Conventions
-----------
* Coordinates are level-0 pixels (QuPath's frame) unless a name says otherwise.
* Boxes are ``(x, y, width, height)`` in level-0 pixels.
* Arrays are ``(y, x)`` or ``(y, x, c)``.
* magnification = 10 / mpp (40x = 0.25 µm/px, 20x = 0.5 µm/px).
"""

from magnipath._errors import MagnipathError

__version__ = "0.1.0"

__all__ = ["MagnipathError", "__version__"]
