"""Regions chosen in the viewer -> level-0 boxes (no window needed: napari's ViewerModel)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from magnipath._errors import MagnipathError
from magnipath._napari._frames import image_frame, vector_frame
from magnipath._napari._regions import camera, canvas_size, shapes_box, view_box

MPP = 0.25


@pytest.fixture
def model():
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((1024, 2048, 3), np.uint8), rgb=True, **image_frame(MPP))
    return viewer, image


def test_view_box_from_camera_and_canvas(model):
    viewer, image = model
    camera(viewer).center = (78.0 + 50.0, 28.0 + 100.0)  # µm (y, x)
    camera(viewer).zoom = 2.0                             # screen px per µm
    # a 200 x 400 px canvas shows 100 x 200 µm: world y 78..178, x 28..228 µm.
    # World 78 µm is the centre of level-0 pixel 312 (312 * 0.25), i.e. level-0 312.5
    assert view_box(viewer, image, size=(200, 400)) == (112, 312, 801, 401)


def test_view_box_is_clipped_to_the_slide(model):
    viewer, image = model
    camera(viewer).center = (0.0, 0.0)
    camera(viewer).zoom = 1.0
    assert view_box(viewer, image, size=(100, 100)) == (0, 0, 201, 201)
    camera(viewer).center = (-1000.0, -1000.0)
    with pytest.raises(MagnipathError, match="current view"):
        view_box(viewer, image, size=(100, 100))
    assert len(canvas_size(viewer)) == 2


def test_shapes_box_uses_the_selected_shapes(model):
    viewer, image = model
    shapes = viewer.add_shapes(
        [np.array([[10, 20], [10, 120], [60, 120], [60, 20]]),      # level-0 (y, x)
         np.array([[500, 1000], [500, 1100], [700, 1100], [700, 1000]])],
        shape_type="rectangle", **vector_frame(MPP))
    assert shapes_box(shapes, image) == (20, 10, 1080, 690)     # none selected: all
    shapes.selected_data = {0}
    assert shapes_box(shapes, image) == (20, 10, 100, 50)
    # a layer in world µm (scale 1) maps through its own scale: 5 µm = 20 level-0 px
    um = viewer.add_shapes([np.array([[5.0, 5.0], [5.0, 10.0], [10.0, 10.0], [10.0, 5.0]])],
                           shape_type="rectangle")
    assert shapes_box(um, image) == (20, 20, 21, 21)   # world 5 µm = level-0 20.5
    empty = viewer.add_shapes(ndim=2)
    with pytest.raises(MagnipathError, match="holds no shape"):
        shapes_box(empty, image)
