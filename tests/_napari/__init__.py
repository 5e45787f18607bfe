"""Tests of magnipath._napari (the napari plugin), run under Xvfb."""
