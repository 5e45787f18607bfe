"""The napari face of MagniPath: the only subpackage that imports napari or Qt."""
