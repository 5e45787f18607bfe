"""The error type of the synthetic slide generator."""

from __future__ import annotations

from magnipath._errors import MagnipathError


class SynthError(MagnipathError):
    """A synthetic slide cannot be made with the settings given."""
