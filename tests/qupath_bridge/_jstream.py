"""A tiny writer of Java object serialisation streams, laid out like QuPath's ``.qpdata``.

It writes what ``java.io.ObjectOutputStream`` writes (protocol 2, block-data mode)
for the few shapes QuPath's ``PathIO.writeImageDataSerialized`` produces: the UTF
header in block data, strings (short and long), an enum constant, ``null``,
Serializable objects with fields and ``writeObject`` data, Externalizable objects
(block data + objects, then ``TC_ENDBLOCKDATA``), primitive arrays and back
references to class descriptors. Good enough to give the validator real streams
without Java; ``test_integrity.py`` also checks the validator on streams written by
a real JVM where ``javac`` is installed.

``write_qpdata(path, objects)`` writes a data file whose hierarchy holds each
object as a JSON string in a ``PathObject``-like Externalizable record.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
from pathlib import Path

HIERARCHY = "qupath.lib.objects.hierarchy.PathObjectHierarchy"


class JavaStreamWriter:
    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.out.write(b"\xac\xed\x00\x05")
        self.handles = 0
        self.classes: dict[str, int] = {}

    def _handle(self) -> int:
        h = 0x7E0000 + self.handles
        self.handles += 1
        return h

    def block(self, data: bytes) -> None:
        if len(data) <= 255:
            self.out.write(b"\x77" + bytes([len(data)]) + data)
        else:
            self.out.write(b"\x7a" + struct.pack(">i", len(data)) + data)

    def utf_block(self, text: str) -> None:
        b = text.encode()
        self.block(struct.pack(">H", len(b)) + b)

    def string(self, text: str) -> None:
        b = text.encode()
        if len(b) < 65536:
            self.out.write(b"\x74" + struct.pack(">H", len(b)) + b)
        else:
            self.out.write(b"\x7c" + struct.pack(">q", len(b)) + b)
        self._handle()

    def null(self) -> None:
        self.out.write(b"\x70")

    def _utf(self, text: str) -> bytes:
        b = text.encode()
        return struct.pack(">H", len(b)) + b

    def class_desc(self, name: str, flags: int, fields: list[tuple[str, str, str | None]],
                   super_name: str | None = None) -> None:
        if name in self.classes:
            self.out.write(b"\x71" + struct.pack(">i", self.classes[name]))
            return
        self.out.write(b"\x72" + self._utf(name) + struct.pack(">q", 42))
        self.classes[name] = self._handle()
        self.out.write(bytes([flags]) + struct.pack(">H", len(fields)))
        for code, fname, ftype in fields:
            self.out.write(code.encode() + self._utf(fname))
            if ftype is not None:
                self.string(ftype)
        self.out.write(b"\x78")  # class annotation: none
        if super_name is None:
            self.null()
        else:
            self.class_desc(super_name, 0x02, [])

    def enum(self, cls: str, constant: str) -> None:
        self.out.write(b"\x7e")
        if cls not in self.classes:
            self.out.write(b"\x72" + self._utf(cls) + struct.pack(">q", 0))
            self.classes[cls] = self._handle()
            self.out.write(b"\x12\x00\x00\x78")
            self.out.write(b"\x72" + self._utf("java.lang.Enum") + struct.pack(">q", 0))
            self._handle()
            self.out.write(b"\x12\x00\x00\x78\x70")
        else:
            self.out.write(b"\x71" + struct.pack(">i", self.classes[cls]))
        self._handle()
        self.string(constant)

    def double_array(self, values: list[float]) -> None:
        self.out.write(b"\x75")
        self.class_desc("[D", 0x02, [])
        self._handle()
        self.out.write(struct.pack(">i", len(values)) + struct.pack(f">{len(values)}d", *values))

    def externalizable(self, cls: str, items: list) -> None:
        """An Externalizable object: each item is bytes (block data) or a str (a String)."""
        self.out.write(b"\x73")
        self.class_desc(cls, 0x0C, [])
        self._handle()
        for it in items:
            if isinstance(it, bytes):
                self.block(it)
            elif isinstance(it, list):
                self.double_array(it)
            else:
                self.string(it)
        self.out.write(b"\x78")

    def getvalue(self) -> bytes:
        return self.out.getvalue()


def qpdata_bytes(objects: list[dict], *, image_type: str = "BRIGHTFIELD_H_E") -> bytes:
    """A ``.qpdata``-like stream; each object is stored as its JSON text."""
    w = JavaStreamWriter()
    w.utf_block("Data file version 3")
    w.string(json.dumps({"dataVersion": 3, "qupathVersion": "test", "server": None}))
    w.out.write(b"\x73")  # java.util.Locale with a writeObject method (fields then end block)
    w.class_desc("java.util.Locale", 0x03, [("I", "hashcode", None),
                                            ("L", "language", "Ljava/lang/String;")])
    w._handle()
    w.out.write(struct.pack(">i", -1))
    w.string("en")
    w.out.write(b"\x78")
    w.enum("qupath.lib.images.ImageData$ImageType", image_type)
    w.null()  # stains
    w.externalizable("qupath.lib.plugins.workflow.Workflow", [struct.pack(">i", 1)])
    # the hierarchy: Serializable with one object field holding the root
    w.out.write(b"\x73")
    w.class_desc(HIERARCHY, 0x02, [("Z", "changed", None),
                                   ("L", "rootObject", "Lqupath/lib/objects/PathObject;")])
    w._handle()
    w.out.write(b"\x00")
    root_items: list = [struct.pack(">i", len(objects))]
    w.out.write(b"\x73")
    w.class_desc("qupath.lib.objects.PathRootObject", 0x0C, [])
    w._handle()
    for it in root_items:
        w.block(it)
    for o in objects:
        coords = [float(v) for v in o.get("coords", [0, 0, 1, 1])]
        w.externalizable("qupath.lib.objects.PathAnnotationObject",
                         [struct.pack(">i", 4), json.dumps(o, sort_keys=True), coords])
    w.out.write(b"\x78")
    w.out.write(b"\x73")  # java.util.HashMap (writeObject: fields, then block data + objects)
    w.class_desc("java.util.HashMap", 0x03, [("F", "loadFactor", None),
                                             ("I", "threshold", None)])
    w._handle()
    w.out.write(struct.pack(">fi", 0.75, 12))
    w.block(struct.pack(">ii", 16, 1))
    w.string("PROJECT_ENTRY_ID")
    w.string("test/1")
    w.out.write(b"\x78")
    w.string("EOF")
    return w.getvalue()


def write_qpdata(path: str | os.PathLike, objects: list[dict], *, chunk: int = 0,
                 pause: float = 0.0) -> Path:
    """Write ``qpdata_bytes(objects)`` to ``path`` (in ``chunk``-byte pieces with a pause,
    to give a kill test instants in the middle of a write)."""
    path = Path(path)
    data = qpdata_bytes(objects)
    with open(path, "wb") as f:
        if chunk <= 0:
            f.write(data)
        else:
            for i in range(0, len(data), chunk):
                f.write(data[i:i + chunk])
                f.flush()
                time.sleep(pause)
    return path


def make_objects(n: int, prefix: str = "user", marked: bool = False) -> list[dict]:
    """``n`` small objects (JSON-able) with distinct names and coordinates."""
    return [{"name": f"{prefix}-{i}", "coords": [i, i, i + 5.5, i + 3.25],
             **({"metadata": {"magnipath": "prediction"}} if marked else {})}
            for i in range(n)]


def read_qpdata_objects(path: str | os.PathLike) -> list[dict]:
    """The objects a ``write_qpdata`` file holds (a test-side reader: JSON strings in order)."""
    data = Path(path).read_bytes()
    out = []
    i = data.find(b"qupath.lib.objects.PathRootObject")
    while True:
        j = data.find(b"\x74", i)
        if j < 0:
            break
        n = struct.unpack_from(">H", data, j + 1)[0]
        text = data[j + 3:j + 3 + n]
        if text.startswith(b"{\"coords\""):
            out.append(json.loads(text))
            i = j + 3 + n
        else:
            i = j + 1
        if text == b"PROJECT_ENTRY_ID":
            break
    return out
