"""QuPath interop: the QuPath GeoJSON dialect and (lazily) paquo project access.

Nothing here imports paquo at module level: paquo starts a JVM when imported
and fails where QuPath is not installed. This package knows QuPath and
shapely, not torch, napari or magnipath.
"""

from qupath_bridge.objects import OBJECT_TYPES, QuPathObject

__all__ = ["OBJECT_TYPES", "QuPathObject"]
