"""Cut whole-slide images into training tiles: labels, context stacks, points, splits.

A grid of target tiles at any magnification (1x-40x) covers every slide;
tiles are filtered by tissue fraction, labelled fraction and required
classes; each kept tile stores its target image plus optional concentric
context inputs (DMMN: 20x target + 10x and 5x context, all 256 px), the label
of its target (annotation polygons rasterised with the class map; pixels no
annotation covers get the ignore index) and optionally a point probability
map ``exp(-a d)``. The result is a dataset folder described in
``docs/dataset-format.md`` and read with :func:`magnipath.dataset.open_dataset`.

Coordinates are level-0 pixels; sizes of tiles are target pixels.
"""

from magnipath.tiling._config import SlideSource, TilingConfig, slide_stem
from magnipath.tiling._grid import stride_from, tile_grid
from magnipath.tiling._labels import point_probability_map
from magnipath.tiling._make import TilingWarning, make_dataset

__all__ = [
    "SlideSource",
    "TilingConfig",
    "TilingWarning",
    "make_dataset",
    "point_probability_map",
    "slide_stem",
    "stride_from",
    "tile_grid",
]
