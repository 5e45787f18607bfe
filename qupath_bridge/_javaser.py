"""A bounded structural reader of Java object serialisation streams (no Java needed).

QuPath stores an image's data (``data/<id>/data.qpdata``) as one Java
``ObjectOutputStream``. QuPath's own readers (``PathIO.readHierarchy`` in 0.5 and
0.6) loop for ever on a stream that ends early, so MagniPath checks the file's
structure first with this reader: it walks the grammar of the Java Object
Serialization Stream Protocol (version 5; magic ``0xACED``) without creating any
object, and either reaches the end of the stream exactly at the end of the data
or raises :class:`StreamError` saying where it stopped.

It cannot hang: every step consumes at least one byte and every length read from
the stream is checked against the bytes left before anything is skipped, so the
time is linear in the file's size and nothing is allocated for a bogus length.

Classes whose ``writeObject`` writes extra data are read the way the protocol
requires them to be written (``defaultWriteObject``/``writeFields`` first, then
block data and objects up to ``TC_ENDBLOCKDATA``); ``Externalizable`` classes must
use block-data mode (protocol 2, the default since Java 1.2). A stream that breaks
these rules is reported as not understood, never as good.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = 0xACED
VERSION = 5
BASE_HANDLE = 0x7E0000

TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT = 0x70, 0x71, 0x72, 0x73
TC_STRING, TC_ARRAY, TC_CLASS, TC_BLOCKDATA = 0x74, 0x75, 0x76, 0x77
TC_ENDBLOCKDATA, TC_RESET, TC_BLOCKDATALONG, TC_EXCEPTION = 0x78, 0x79, 0x7A, 0x7B
TC_LONGSTRING, TC_PROXYCLASSDESC, TC_ENUM = 0x7C, 0x7D, 0x7E

SC_WRITE_METHOD, SC_BLOCK_DATA, SC_SERIALIZABLE = 0x01, 0x08, 0x02
SC_EXTERNALIZABLE, SC_ENUM = 0x04, 0x10

_PRIMITIVE_SIZE = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class StreamError(ValueError):
    """The data is not a complete Java serialisation stream.

    Attributes
    ----------
    offset : int
        Byte offset where reading stopped.
    truncated : bool
        True when the stream ends before its structure is complete.
    """

    def __init__(self, message: str, offset: int, *, truncated: bool = False) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset
        self.truncated = truncated


@dataclass
class ClassDesc:
    """A class descriptor read from the stream."""

    name: str
    flags: int
    fields: list[tuple[str, str]]  # (type code, field name); type code is a primitive or L / [
    super: ClassDesc | None = None


@dataclass
class TopLevel:
    """One top-level item of the stream.

    ``kind`` is ``"block"``, ``"object"``, ``"string"``, ``"enum"``, ``"array"``,
    ``"class"``, ``"null"``, ``"reference"``, ``"reset"`` or ``"exception"``;
    ``name`` is the class name (objects, enums, arrays), the text (strings, up to
    256 characters) or the first bytes of block data.
    """

    kind: str
    name: str | bytes | None
    offset: int
    end: int


@dataclass
class ScanResult:
    """What :func:`scan` found: the top-level items and how many objects in all."""

    items: list[TopLevel] = field(default_factory=list)
    n_objects: int = 0
    size: int = 0


class _Reader:
    def __init__(self, data: bytes | memoryview,
                 check: Callable[[], None] | None = None) -> None:
        self.d = data
        self.n = len(data)
        self.p = 0
        self.handles: list[object] = []
        self.n_objects = 0
        self._check = check
        self._steps = 0

    # -- primitives -----------------------------------------------------------------------
    def need(self, k: int) -> None:
        if k < 0:
            raise StreamError(f"negative length {k}", self.p)
        if self.p + k > self.n:
            raise StreamError(f"the stream ends early: {k} more bytes needed, "
                              f"{self.n - self.p} left", self.p, truncated=True)

    def u8(self) -> int:
        if self.p >= self.n:
            raise StreamError("the stream ends early", self.p, truncated=True)
        v = self.d[self.p]
        self.p += 1
        return v

    def u16(self) -> int:
        self.need(2)
        v = _U16.unpack_from(self.d, self.p)[0]
        self.p += 2
        return v

    def i32(self) -> int:
        self.need(4)
        v = _I32.unpack_from(self.d, self.p)[0]
        self.p += 4
        return v

    def i64(self) -> int:
        self.need(8)
        v = _I64.unpack_from(self.d, self.p)[0]
        self.p += 8
        return v

    def skip(self, k: int) -> None:
        self.need(k)
        self.p += k

    def utf(self, length: int) -> str:
        self.need(length)
        s = bytes(self.d[self.p:self.p + length]).decode("utf-8", errors="replace")
        self.p += length
        return s

    def new_handle(self, value: object) -> int:
        self.handles.append(value)
        return len(self.handles) - 1

    def tick(self) -> None:
        self._steps += 1
        if self._check is not None and not self._steps & 0xFFFF:
            self._check()

    # -- grammar ----------------------------------------------------------------------------
    def content(self, tc: int | None = None) -> tuple[str, object]:
        """One content item; returns (kind, value) where value is a ClassDesc, str or None."""
        self.tick()
        start = self.p
        if tc is None:
            tc = self.u8()
        if tc == TC_NULL:
            return "null", None
        if tc == TC_REFERENCE:
            h = self.i32() - BASE_HANDLE
            if not 0 <= h < len(self.handles):
                raise StreamError(f"reference to handle {h + BASE_HANDLE:#x}, which does not "
                                  "exist yet", start)
            value = self.handles[h]
            return ("reference", value)
        if tc == TC_STRING:
            s = self._string(self.u16())
            return "string", s
        if tc == TC_LONGSTRING:
            s = self._string(self.i64())
            return "string", s
        if tc in (TC_CLASSDESC, TC_PROXYCLASSDESC):
            return "classdesc", self.class_desc(tc)
        if tc == TC_OBJECT:
            return "object", self.new_object()
        if tc == TC_ARRAY:
            return "array", self.array()
        if tc == TC_ENUM:
            desc = self.class_desc()
            self.new_handle(None)
            self.string_object("enum constant name")
            return "enum", desc
        if tc == TC_CLASS:
            desc = self.class_desc()
            self.new_handle(desc)
            return "class", desc
        if tc == TC_BLOCKDATA:
            self.skip(self.u8())
            return "block", None
        if tc == TC_BLOCKDATALONG:
            self.skip(self.i32())
            return "block", None
        if tc == TC_RESET:
            self.handles.clear()
            return "reset", None
        if tc == TC_EXCEPTION:
            self.handles.clear()
            _, value = self.content()
            self.handles.clear()
            return "exception", value
        if tc == TC_ENDBLOCKDATA:
            return "end", None
        raise StreamError(f"unknown type code {tc:#04x}", start)

    def _string(self, length: int) -> str | None:
        self.need(length)
        text = (bytes(self.d[self.p:self.p + length]).decode("utf-8", errors="replace")
                if length <= 256 else None)
        self.p += length
        self.new_handle(text)
        return text

    def string_object(self, what: str) -> str | None:
        start = self.p
        kind, value = self.content()
        if kind not in ("string", "reference") or (
                kind == "reference" and value is not None and not isinstance(value, str)):
            raise StreamError(f"{what}: a string was expected, found {kind}", start)
        return value if isinstance(value, str) else None

    def class_desc(self, tc: int | None = None) -> ClassDesc | None:
        start = self.p
        if tc is None:
            tc = self.u8()
        if tc == TC_NULL:
            return None
        if tc == TC_REFERENCE:
            _, value = self.content(TC_REFERENCE)
            if not isinstance(value, ClassDesc):
                raise StreamError("a reference to a class descriptor points to something else",
                                  start)
            return value
        if tc == TC_CLASSDESC:
            name = self.utf(self.u16())
            self.skip(8)  # serialVersionUID
            desc = ClassDesc(name, 0, [])
            self.new_handle(desc)
            desc.flags = self.u8()
            n = self.u16()
            for _ in range(n):
                code = chr(self.u8())
                fname = self.utf(self.u16())
                if code in ("L", "["):
                    self.string_object(f"type of field {fname!r} of {name}")
                elif code not in _PRIMITIVE_SIZE:
                    raise StreamError(f"field {fname!r} of {name} has unknown type code "
                                      f"{code!r}", self.p)
                desc.fields.append((code, fname))
            self.annotation()
            desc.super = self.class_desc()
            if desc.flags & SC_EXTERNALIZABLE and desc.flags & SC_SERIALIZABLE:
                raise StreamError(f"class {name} is both Serializable and Externalizable", start)
            return desc
        if tc == TC_PROXYCLASSDESC:
            desc = ClassDesc("<proxy>", SC_SERIALIZABLE, [])
            self.new_handle(desc)
            n = self.i32()
            self.need(n)  # each name takes at least 2 bytes: a cheap bound
            for _ in range(n):
                self.skip(self.u16())
            self.annotation()
            desc.super = self.class_desc()
            return desc
        raise StreamError(f"a class descriptor was expected, found type code {tc:#04x}", start)

    def annotation(self) -> None:
        """Contents up to TC_ENDBLOCKDATA (class and object annotations)."""
        while True:
            kind, _ = self.content()
            if kind == "end":
                return

    def new_object(self) -> ClassDesc:
        start = self.p
        desc = self.class_desc()
        if desc is None:
            raise StreamError("an object without a class descriptor", start)
        self.new_handle(desc)
        self.n_objects += 1
        chain = []
        c: ClassDesc | None = desc
        while c is not None:
            chain.append(c)
            c = c.super
        for c in reversed(chain):
            if c.flags & SC_EXTERNALIZABLE:
                if not c.flags & SC_BLOCK_DATA:
                    raise StreamError(f"class {c.name} was written with the old protocol 1 "
                                      "(Externalizable without block data); this reader cannot "
                                      "check it", self.p)
                self.annotation()
            elif c.flags & SC_SERIALIZABLE:
                self.values(c)
                if c.flags & SC_WRITE_METHOD:
                    self.annotation()
        return desc

    def values(self, c: ClassDesc) -> None:
        for code, _ in c.fields:
            size = _PRIMITIVE_SIZE.get(code)
            if size is not None:
                self.skip(size)
            else:
                start = self.p
                kind, _ = self.content()
                if kind in ("end", "block"):
                    raise StreamError(f"field of {c.name}: an object was expected, found {kind}",
                                      start)

    def array(self) -> ClassDesc:
        start = self.p
        desc = self.class_desc()
        if desc is None or not desc.name.startswith("["):
            raise StreamError("an array without an array class descriptor", start)
        self.new_handle(desc)
        n = self.i32()
        if n < 0:
            raise StreamError(f"array of negative size {n}", self.p)
        code = desc.name[1:2]
        size = _PRIMITIVE_SIZE.get(code)
        if size is not None:
            self.skip(n * size)
        else:
            self.need(n)  # every element takes at least one byte
            for _ in range(n):
                kind, _ = self.content()
                if kind in ("end", "block"):
                    raise StreamError(f"array element: an object was expected, found {kind}",
                                      self.p)
        return desc


def scan(data: bytes | memoryview, *, check: Callable[[], None] | None = None) -> ScanResult:
    """Walk a whole Java serialisation stream; return its top-level items.

    Parameters
    ----------
    data : bytes-like
        The whole stream (a file's bytes; a memory map works too).
    check : callable, optional
        Called every 65,536 steps; it may raise to stop (a deadline, say).

    Returns
    -------
    ScanResult
        Top-level items in order, the number of objects and the stream's size.

    Raises
    ------
    StreamError
        The magic number or version is wrong, a structure is invalid, or the data
        ends before the structure does (``truncated``).
    """
    r = _Reader(data, check)
    if r.n < 4:
        raise StreamError(f"only {r.n} bytes: not a Java serialisation stream", 0,
                          truncated=r.n == 0 or bytes(data[:r.n]) == b"\xac\xed\x00\x05"[:r.n])
    if _U16.unpack_from(data, 0)[0] != MAGIC or _U16.unpack_from(data, 2)[0] != VERSION:
        raise StreamError("not a Java serialisation stream (wrong magic number)", 0)
    r.p = 4
    out = ScanResult(size=r.n)
    while r.p < r.n:
        start = r.p
        kind, value = r.content()
        if kind == "end":
            raise StreamError("end of block data outside any object", start)
        name: str | bytes | None = None
        if isinstance(value, ClassDesc):
            name = value.name
        elif isinstance(value, str):
            name = value
        if kind == "block":
            name = bytes(data[start:min(r.p, start + 300)])
        out.items.append(TopLevel(kind, name, start, r.p))
    out.n_objects = r.n_objects
    return out
