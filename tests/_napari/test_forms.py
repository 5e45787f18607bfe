"""The form fields the widgets share: the slide picker and the region picker."""

from __future__ import annotations

import numpy as np
import pytest
from magicgui.widgets import Container
from napari.components import ViewerModel

from magnipath._errors import MagnipathError
from magnipath._napari._forms import REGIONS, RegionFields, slide_field
from magnipath._napari._frames import image_frame, vector_frame
from magnipath._napari._regions import camera, view_box

MPP = 0.25


@pytest.fixture
def model(qapp):
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((1024, 2048, 3), np.uint8), rgb=True, name="slide",
                             **image_frame(MPP))
    return viewer, image


def test_slide_field_offers_the_image_layers(model):
    viewer, image = model
    viewer.add_shapes([np.array([[0, 0], [0, 10], [10, 10]])], shape_type="polygon", name="drawn")
    field = slide_field(viewer)
    field.reset_choices()
    assert field.label == "Slide image"
    assert list(field.choices) == [image]


def test_region_boxes(model):
    viewer, image = model
    fields = RegionFields(viewer)
    assert fields.region.value == REGIONS[0] and fields.box(image) is None  # whole slide
    fields.region.value = REGIONS[2]
    with pytest.raises(MagnipathError, match="Region shapes"):
        fields.box(image)
    # a rectangle drawn over level-0 x 256..768, y 128..512
    rect = viewer.add_shapes([np.array([[128, 256], [128, 768], [512, 768], [512, 256]])],
                             shape_type="rectangle", name="region", **vector_frame(MPP))
    fields.shapes.reset_choices()
    fields.shapes.value = rect
    assert fields.box(image) == (256, 128, 512, 384)
    fields.region.value = REGIONS[1]
    camera(viewer).center, camera(viewer).zoom = (100.0, 200.0), 4.0
    assert fields.box(image) == view_box(viewer, image)


def test_the_shapes_choice_shows_only_for_drawn_shapes(model):
    viewer, _ = model
    fields = RegionFields(viewer)
    form = Container(widgets=[fields.region, fields.shapes])
    form.show()
    try:
        fields.toggle()
        assert not fields.shapes.visible
        fields.region.value = REGIONS[2]
        assert fields.shapes.visible
        fields.region.value = REGIONS[1]
        assert not fields.shapes.visible
    finally:
        form.close()
