"""A test double of QuPath as :mod:`qupath_bridge.project` reaches it (paquo + Java).

The bridge gets paquo and the QuPath classes it uses from one place,
:func:`qupath_bridge.project._java` (a namespace cached in ``project._J``).
:func:`installed` puts a double of that namespace there for the length of a
``with`` block, so every ``Project`` / ``create_project`` call - from Python, the
CLI, the napari widget, ``infer --qupath-project`` - runs against it, with real
project folders on disk (layout: :mod:`._project`).

Flavours, chosen by name:

``"0.4"`` (QuPath 0.4.3; opt-in, see tests/conftest.py)
    no public ``getMetadata()`` / ``hasMetadata()``; the GeoJSON reader and writer
    keep no metadata on annotations or detections (only TMA cores have them).
``"0.5"`` (QuPath 0.5.1)
    detections' metadata are read-only (``getMetadata().put`` raises
    ``java.lang.UnsupportedOperationException``), the GeoJSON reader drops
    detections' metadata (logging "Exception setting metadata values"), objects
    have no ``hasMetadata()``, GeoJSON is exported with the rings as stored.
``"0.6"`` (QuPath 0.6.0)
    metadata writable on every object, ``hasMetadata()``, GeoJSON exported with
    normalised rings (JTS ``norm()``).

Both save an image's data as QuPath's ``DefaultProject.saveImageData`` does
(``data.qpdata`` -> ``data.qpdata.bkp``, new ``data.qpdata`` written in place,
``.bkp`` deleted) and the project file as ``writeProject`` does
(``project.qpproj.tmp``, old file -> ``project.qpproj.backup``, rename).
``data.qpdata`` is a well-formed Java serialisation stream in QuPath's order
(:mod:`._qpdata`); ``PathIO.writeImageData(File, ImageData)`` and
``PathIO.readHierarchy(File)`` exist as in QuPath.

Hooks for kill-safety tests: ``ns.hooks["before_save_image_data"] = f`` makes
``f(java_entry, data_path)`` run after the ``.bkp`` move and before the new
``data.qpdata`` is written (raise in it to imitate a crash mid-save).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from _qupath_double import _java as jv
from _qupath_double import _project as pj
from _qupath_double._project import read_qpdata, write_qpdata
from _qupath_double._qpdata import QPDATA_MAGIC

FLAVOURS = {"0.4": "0.4.3", "0.5": "0.5.1", "0.6": "0.6.0"}
"""Flavour name -> the QuPath version it imitates."""

__all__ = ["FLAVOURS", "QPDATA_MAGIC", "installed", "namespace", "read_qpdata", "write_qpdata"]


def namespace(flavour: str) -> SimpleNamespace:
    """A fresh double of what ``qupath_bridge.project._java()`` returns.

    Parameters
    ----------
    flavour : {"0.4", "0.5", "0.6"}

    Returns
    -------
    SimpleNamespace
        The attributes the bridge uses (``QuPathProject``, ``PathIO``, ``GsonTools``,
        ``ArrayList``, ``File``, ``String``, ``QuPathPathClass``, ``ImageProvider``,
        ``QuPathImageType``, ``redirect``) plus ``world`` (version, class cache),
        ``flavour``, ``version`` and ``hooks``.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown QuPath double flavour {flavour!r}; use one of {list(FLAVOURS)}")
    world = jv.JavaWorld(FLAVOURS[flavour])
    hooks: dict[str, Any] = {}

    def project(path: Any, mode: str = "r") -> pj.QuPathProject:
        p = pj.QuPathProject(world, path, mode=mode)
        p.java_object.hooks = hooks
        return p

    return SimpleNamespace(
        redirect=pj.redirect, QuPathPathClass=pj.QuPathPathClass,
        ImageProvider=pj.ImageProvider, QuPathImageType=pj.QuPathImageType,
        ArrayList=jv.ArrayList, File=jv.File, GsonTools=jv.GsonTools(world),
        PathIO=jv.PathIO(world), String=jv.String, QuPathProject=project,
        world=world, flavour=flavour, version=FLAVOURS[flavour], hooks=hooks)


@contextlib.contextmanager
def installed(flavour: str) -> Iterator[SimpleNamespace]:
    """Run the QuPath bridge against a fresh double inside the block; yields its namespace."""
    from qupath_bridge import project

    ns = namespace(flavour)
    before = project._J
    project._J = ns
    try:
        yield ns
    finally:
        project._J = before
