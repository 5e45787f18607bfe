"""Exceptions with messages meant for the user (a pathologist, not a debugger)."""

from __future__ import annotations


class MagnipathError(Exception):
    """Base class of every error MagniPath reports to the user.

    The message is one paragraph that names the file or field at fault and says
    what to do. The CLI prints it and exits non-zero; napari shows it as a
    notification.
    """


class SlideError(MagnipathError):
    """A slide cannot be opened or read (corrupt, unsupported, no mpp...)."""


class AnnotationError(MagnipathError):
    """Annotations cannot be read or do not match the class map."""


class TilingError(MagnipathError):
    """Tiling cannot produce a dataset (no tile passes the filters...)."""


class ModelError(MagnipathError):
    """A model or checkpoint is missing, corrupt or does not match its input."""


class Cancelled(MagnipathError):
    """Long work was cancelled by the user; nothing half-written is left."""
