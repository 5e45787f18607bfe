"""Errors of the QuPath bridge."""

from __future__ import annotations


class QuPathBridgeError(Exception):
    """A QuPath file or project cannot be read or written.

    The message names the file (and, for GeoJSON, the feature index) and says
    what is wrong. MagniPath wraps it into its own user-facing errors.
    """
