"""``data.qpdata`` of the QuPath double: a real Java serialisation stream in QuPath's order.

QuPath's ``PathIO.writeImageDataSerialized`` (v0.5.1 / v0.6.0) writes, to one
``ObjectOutputStream``: ``writeUTF("Data file version ...")``, the server JSON
(String), the Locale, the ImageType, the stains, the workflow, the
``PathObjectHierarchy``, a property map, then the String ``"EOF"``.

The double writes the same stream structure (magic ``AC ED 00 05``, block-data
UTF, ``TC_STRING`` objects, one ``TC_OBJECT`` of class
``qupath.lib.objects.hierarchy.PathObjectHierarchy``, ``"EOF"``), with two
simplifications: the Locale / stains / workflow / map are left out, the image
type is a String, and the hierarchy object is a plain ``Serializable`` with one
String field ``objectsJson`` that holds the object tree as JSON (ASCII, so
Java's modified UTF-8 and UTF-8 agree). A stream validator sees a well-formed
stream; :func:`read_qpdata` reads exactly this layout and raises
``java.io.IOException`` on anything else (truncated, garbled, or missing EOF),
as ``ObjectInputStream`` would (no endless loop).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from _qupath_double import _java as jv

QPDATA_MAGIC = b"\xac\xed\x00\x05"
"""First bytes of every ``data.qpdata`` (Java serialisation STREAM_MAGIC + version 5)."""
DATA_FILE_VERSION = "Data file version 3"
HIERARCHY_CLASS = "qupath.lib.objects.hierarchy.PathObjectHierarchy"
SERIAL_UID = -3712497398254547236  # any fixed long; the double reads its own files only

TC_NULL, TC_CLASSDESC, TC_OBJECT, TC_STRING = 0x70, 0x72, 0x73, 0x74
TC_BLOCKDATA, TC_ENDBLOCKDATA, TC_LONGSTRING = 0x77, 0x78, 0x7C
SC_SERIALIZABLE = 0x02


def _utf(s: str) -> bytes:
    b = s.encode("ascii")
    return struct.pack(">H", len(b)) + b


def _string(s: str) -> bytes:
    b = s.encode("ascii")
    if len(b) < 0x10000:
        return bytes([TC_STRING]) + struct.pack(">H", len(b)) + b
    return bytes([TC_LONGSTRING]) + struct.pack(">Q", len(b)) + b


def encode(server_json: str, image_type: str, objects_json: str) -> bytes:
    """The bytes of one ``data.qpdata``."""
    version = _utf(DATA_FILE_VERSION)
    out = bytearray(QPDATA_MAGIC)
    out += bytes([TC_BLOCKDATA, len(version)]) + version
    out += _string(server_json)
    out += _string(image_type)
    out += bytes([TC_OBJECT, TC_CLASSDESC]) + _utf(HIERARCHY_CLASS)
    out += struct.pack(">qBH", SERIAL_UID, SC_SERIALIZABLE, 1)
    out += b"L" + _utf("objectsJson") + _string("Ljava/lang/String;")
    out += bytes([TC_ENDBLOCKDATA, TC_NULL])
    out += _string(objects_json)
    out += _string("EOF")
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise jv.IOException(f"java.io.EOFException reading {self.where}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self, expected: int | None = None) -> int:
        b = self.take(1)[0]
        if expected is not None and b != expected:
            raise jv.IOException(f"java.io.StreamCorruptedException: invalid type code "
                                 f"{b:02X} in {self.where}")
        return b

    def utf(self) -> str:
        (n,) = struct.unpack(">H", self.take(2))
        return self.take(n).decode("utf-8", errors="replace")

    def string(self) -> str:
        tc = self.byte()
        if tc == TC_STRING:
            (n,) = struct.unpack(">H", self.take(2))
        elif tc == TC_LONGSTRING:
            (n,) = struct.unpack(">Q", self.take(8))
        else:
            raise jv.IOException(f"java.io.StreamCorruptedException: invalid type code "
                                 f"{tc:02X} in {self.where}")
        return self.take(n).decode("utf-8", errors="replace")


def decode(data: bytes, where: str) -> dict[str, Any]:
    """``{"server": str, "imageType": str, "objects": list}`` of :func:`encode`'s bytes."""
    r = _Reader(data, where)
    if r.take(4) != QPDATA_MAGIC:
        raise jv.IOException(f"java.io.StreamCorruptedException: invalid stream header in "
                             f"{where}")
    r.byte(TC_BLOCKDATA)
    r.byte()
    if not r.utf().startswith("Data file version"):
        raise jv.IOException(f"{where} is not a QuPath data file")
    server, image_type = r.string(), r.string()
    r.byte(TC_OBJECT)
    r.byte(TC_CLASSDESC)
    if r.utf() != HIERARCHY_CLASS:
        raise jv.IOException(f"unexpected class in {where}")
    r.take(8 + 1 + 2)
    r.byte(ord("L"))
    r.utf()
    r.string()
    r.byte(TC_ENDBLOCKDATA)
    r.byte(TC_NULL)
    objects = r.string()
    if r.string() != "EOF" or r.pos != len(data):
        raise jv.IOException(f"java.io.EOFException: no EOF marker at the end of {where}")
    try:
        return {"server": server, "imageType": image_type, "objects": json.loads(objects)}
    except ValueError as e:
        raise jv.IOException(f"{where}: {e}") from None


def write_bytes(path: Path, data: bytes) -> None:
    """``Files.newOutputStream(pathData)``: written in place, not through a temp file."""
    with open(path, "wb") as f:
        f.write(data)


def read_file(path: Path) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise jv.IOException(str(e)) from None
    return decode(raw, str(path))
