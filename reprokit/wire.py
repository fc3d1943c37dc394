# MongoDB wire codec, sans-IO: bytes in, frozen dataclasses out, and back.
#
# Strategy: `FrameSplitter` cuts a byte stream into whole frames and rejects an
# impossible messageLength as soon as the 16-byte header is in, so a hostile
# length never makes us buffer or wait for data that cannot come.
# `decode_message` turns one frame into the dataclass of its opcode (chosen
# through `_DECODERS`); each dataclass has `pack()` producing the full frame.
# Invariants: every read is bounds-checked, every BSON document is validated
# by a full decode (or, for trusted upstream replies, kept raw on request), and
# any violation raises a `ProtocolError` subclass naming what was wrong. Cursor
# ids are int64 everywhere, OP_KILL_CURSORS included. No sockets here.
from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

HEADER = struct.Struct("<iiii")
HEADER_SIZE = HEADER.size
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_REPLY_FIXED = struct.Struct("<Iqii")  # responseFlags, cursorID, startingFrom, numberReturned

# mongod's maxMessageSizeBytes is 48,000,000; legacy command frames may exceed it by
# the 16 KiB mongod allowed for the command envelope.
DEFAULT_MAX_FRAME = 48_000_000 + 16 * 1024
MIN_BSON = 5

# Datetimes outside Python's range must round-trip untouched, so decode as milliseconds.
DECODE_OPTIONS: CodecOptions[Any] = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)
RAW_OPTIONS: CodecOptions[Any] = CodecOptions(
    document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_MS
)

Document = Mapping[str, Any]


class OpCode(enum.IntEnum):
    REPLY = 1
    UPDATE = 2001
    INSERT = 2002
    QUERY = 2004
    GET_MORE = 2005
    DELETE = 2006
    KILL_CURSORS = 2007
    COMPRESSED = 2012
    MSG = 2013


class QueryFlags(enum.IntFlag):
    TAILABLE_CURSOR = 1 << 1
    SLAVE_OK = 1 << 2
    OPLOG_REPLAY = 1 << 3
    NO_CURSOR_TIMEOUT = 1 << 4
    AWAIT_DATA = 1 << 5
    EXHAUST = 1 << 6
    PARTIAL = 1 << 7


class ReplyFlags(enum.IntFlag):
    CURSOR_NOT_FOUND = 1 << 0
    QUERY_FAILURE = 1 << 1
    SHARD_CONFIG_STALE = 1 << 2
    AWAIT_CAPABLE = 1 << 3


class InsertFlags(enum.IntFlag):
    CONTINUE_ON_ERROR = 1 << 0


class UpdateFlags(enum.IntFlag):
    UPSERT = 1 << 0
    MULTI_UPDATE = 1 << 1


class DeleteFlags(enum.IntFlag):
    SINGLE_REMOVE = 1 << 0


class MsgFlags(enum.IntFlag):
    CHECKSUM_PRESENT = 1 << 0
    MORE_TO_COME = 1 << 1
    EXHAUST_ALLOWED = 1 << 16


NO_REPLY_FLAGS = ReplyFlags(0)
NO_MSG_FLAGS = MsgFlags(0)


class ProtocolError(Exception):
    """The peer broke the wire protocol; the connection cannot continue."""


class BadLength(ProtocolError):
    """A messageLength (or a length inside the body) is impossible."""


class Truncated(ProtocolError):
    """The body ends before a field it declares."""


class InvalidDocument(ProtocolError):
    """A BSON document in the body does not decode."""


class UnterminatedString(ProtocolError):
    """A cstring has no NUL before the end of the body, or is not UTF-8."""


class TrailingBytes(ProtocolError):
    """Bytes left over inside a frame after its last field."""


class UnsupportedOpcode(ProtocolError):
    """An opcode this codec does not handle (OP_COMPRESSED, unknown values)."""

    def __init__(self, message: str, header: Header) -> None:
        super().__init__(message)
        self.header = header


@dataclass(frozen=True)
class Header:
    length: int
    request_id: int
    response_to: int
    opcode: int


def parse_header(data: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_FRAME) -> Header:
    """Read and sanity-check the 16-byte header at the start of `data`."""
    if len(data) < HEADER_SIZE:
        raise Truncated(f"header needs {HEADER_SIZE} bytes, got {len(data)}")
    header = Header(*HEADER.unpack_from(data, 0))
    if header.length < HEADER_SIZE:
        raise BadLength(f"messageLength {header.length} is smaller than the header")
    if header.length > max_size:
        raise BadLength(f"messageLength {header.length} exceeds the limit of {max_size}")
    return header


class FrameSplitter:
    """Accumulate stream bytes; hand out whole frames one by one."""

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def needed(self) -> int:
        """Bytes still missing for the next frame (header first); 0 if one is ready."""
        if len(self._buf) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buf)
        header = parse_header(self._buf, self.max_size)
        return max(0, header.length - len(self._buf))

    def next_frame(self) -> bytes | None:
        """Return the next complete frame, or None if more bytes are needed."""
        if len(self._buf) < HEADER_SIZE:
            return None
        header = parse_header(self._buf, self.max_size)
        if len(self._buf) < header.length:
            return None
        frame = bytes(self._buf[: header.length])
        del self._buf[: header.length]
        return frame


# -- body reading helpers -------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "end", "options", "pos")

    def __init__(self, data: bytes, pos: int, end: int, options: CodecOptions[Any]) -> None:
        self.data, self.pos, self.end, self.options = data, pos, end, options

    def remaining(self) -> int:
        return self.end - self.pos

    def _fixed(self, st: struct.Struct, what: str) -> Any:
        if self.pos + st.size > self.end:
            raise Truncated(f"body ends before {what}")
        (value,) = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return value

    def i32(self, what: str) -> int:
        return int(self._fixed(_I32, what))

    def u32(self, what: str) -> int:
        return int(self._fixed(_U32, what))

    def i64(self, what: str) -> int:
        return int(self._fixed(_I64, what))

    def cstring(self, what: str) -> str:
        nul = self.data.find(b"\x00", self.pos, self.end)
        if nul < 0:
            raise UnterminatedString(f"{what} has no terminating NUL")
        try:
            text = self.data[self.pos : nul].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnterminatedString(f"{what} is not valid UTF-8") from exc
        self.pos = nul + 1
        return text

    def document(self, what: str) -> Any:
        size = self.i32(f"{what} length")
        self.pos -= 4
        if size < MIN_BSON or self.pos + size > self.end:
            raise BadLength(f"{what} declares {size} bytes, {self.remaining()} remain")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return decode_document(chunk, self.options, what)

    def documents(self, what: str) -> tuple[Any, ...]:
        docs = []
        while self.pos < self.end:
            docs.append(self.document(what))
        return tuple(docs)

    def finish(self, what: str) -> None:
        if self.pos != self.end:
            raise TrailingBytes(f"{self.end - self.pos} unexpected bytes after {what}")


def decode_document(
    chunk: bytes, options: CodecOptions[Any] = DECODE_OPTIONS, what: str = "document"
) -> Any:
    """Decode one BSON document, turning every decoder failure into InvalidDocument."""
    try:
        if options.document_class is RawBSONDocument:
            # The raw class only checks the envelope; walk it once to validate.
            doc = RawBSONDocument(chunk, options)
            len(doc)
            return doc
        return bson.decode(chunk, options)
    except RecursionError as exc:
        raise InvalidDocument(f"{what}: nesting too deep") from exc
    except Exception as exc:  # the C decoder raises several unrelated types
        raise InvalidDocument(f"{what}: {type(exc).__name__}: {exc}") from exc


def encode_document(doc: Document) -> bytes:
    if isinstance(doc, RawBSONDocument):
        return bytes(doc.raw)
    return bson.encode(doc)


def _frame(opcode: OpCode, request_id: int, response_to: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER_SIZE + len(body), request_id, response_to, opcode) + body


def _cstring(text: str) -> bytes:
    raw = text.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError(f"cstring contains NUL: {text!r}")
    return raw + b"\x00"


# -- one dataclass per opcode ----------------------------------------------------------


@dataclass(frozen=True)
class OpReply:
    opcode: ClassVar[OpCode] = OpCode.REPLY
    request_id: int
    response_to: int
    flags: ReplyFlags = NO_REPLY_FLAGS
    cursor_id: int = 0
    starting_from: int = 0
    documents: tuple[Document, ...] = ()

    def pack(self) -> bytes:
        docs = b"".join(encode_document(d) for d in self.documents)
        fixed = _REPLY_FIXED.pack(
            int(self.flags), self.cursor_id, self.starting_from, len(self.documents)
        )
        return _frame(self.opcode, self.request_id, self.response_to, fixed + docs)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpReply:
        flags = ReplyFlags(r.u32("responseFlags"))
        cursor_id = r.i64("cursorID")
        starting_from = r.i32("startingFrom")
        count = r.i32("numberReturned")
        docs = r.documents("reply document")
        if count != len(docs):
            raise BadLength(f"numberReturned is {count} but {len(docs)} documents follow")
        return cls(header.request_id, header.response_to, flags, cursor_id, starting_from, docs)


@dataclass(frozen=True)
class OpUpdate:
    opcode: ClassVar[OpCode] = OpCode.UPDATE
    request_id: int
    response_to: int
    namespace: str
    flags: UpdateFlags
    selector: Document
    update: Document

    def pack(self) -> bytes:
        body = (
            _I32.pack(0)
            + _cstring(self.namespace)
            + _U32.pack(int(self.flags))
            + encode_document(self.selector)
            + encode_document(self.update)
        )
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpUpdate:
        r.i32("ZERO")
        ns = r.cstring("fullCollectionName")
        flags = UpdateFlags(r.u32("flags"))
        selector = r.document("selector")
        update = r.document("update")
        r.finish("update document")
        return cls(header.request_id, header.response_to, ns, flags, selector, update)


@dataclass(frozen=True)
class OpInsert:
    opcode: ClassVar[OpCode] = OpCode.INSERT
    request_id: int
    response_to: int
    namespace: str
    flags: InsertFlags
    documents: tuple[Document, ...]

    def pack(self) -> bytes:
        body = _U32.pack(int(self.flags)) + _cstring(self.namespace)
        body += b"".join(encode_document(d) for d in self.documents)
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpInsert:
        flags = InsertFlags(r.u32("flags"))
        ns = r.cstring("fullCollectionName")
        docs = r.documents("inserted document")
        if not docs:
            raise Truncated("OP_INSERT carries no document")
        return cls(header.request_id, header.response_to, ns, flags, docs)


@dataclass(frozen=True)
class OpQuery:
    opcode: ClassVar[OpCode] = OpCode.QUERY
    request_id: int
    response_to: int
    flags: QueryFlags
    namespace: str
    skip: int
    limit: int  # numberToReturn
    query: Document
    fields: Document | None = None

    def pack(self) -> bytes:
        body = (
            _U32.pack(int(self.flags))
            + _cstring(self.namespace)
            + _I32.pack(self.skip)
            + _I32.pack(self.limit)
            + encode_document(self.query)
        )
        if self.fields is not None:
            body += encode_document(self.fields)
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpQuery:
        flags = QueryFlags(r.u32("flags"))
        ns = r.cstring("fullCollectionName")
        skip = r.i32("numberToSkip")
        limit = r.i32("numberToReturn")
        query = r.document("query")
        fields = r.document("returnFieldsSelector") if r.remaining() else None
        r.finish("returnFieldsSelector")
        return cls(header.request_id, header.response_to, flags, ns, skip, limit, query, fields)


@dataclass(frozen=True)
class OpGetMore:
    opcode: ClassVar[OpCode] = OpCode.GET_MORE
    request_id: int
    response_to: int
    namespace: str
    limit: int  # numberToReturn
    cursor_id: int

    def pack(self) -> bytes:
        body = _I32.pack(0) + _cstring(self.namespace) + _I32.pack(self.limit)
        body += _I64.pack(self.cursor_id)
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpGetMore:
        r.i32("ZERO")
        ns = r.cstring("fullCollectionName")
        limit = r.i32("numberToReturn")
        cursor_id = r.i64("cursorID")
        r.finish("cursorID")
        return cls(header.request_id, header.response_to, ns, limit, cursor_id)


@dataclass(frozen=True)
class OpDelete:
    opcode: ClassVar[OpCode] = OpCode.DELETE
    request_id: int
    response_to: int
    namespace: str
    flags: DeleteFlags
    selector: Document

    def pack(self) -> bytes:
        body = _I32.pack(0) + _cstring(self.namespace) + _U32.pack(int(self.flags))
        body += encode_document(self.selector)
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpDelete:
        r.i32("ZERO")
        ns = r.cstring("fullCollectionName")
        flags = DeleteFlags(r.u32("flags"))
        selector = r.document("selector")
        r.finish("selector")
        return cls(header.request_id, header.response_to, ns, flags, selector)


@dataclass(frozen=True)
class OpKillCursors:
    opcode: ClassVar[OpCode] = OpCode.KILL_CURSORS
    request_id: int
    response_to: int
    cursor_ids: tuple[int, ...]

    def pack(self) -> bytes:
        body = _I32.pack(0) + _I32.pack(len(self.cursor_ids))
        body += b"".join(_I64.pack(c) for c in self.cursor_ids)
        return _frame(self.opcode, self.request_id, self.response_to, body)

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpKillCursors:
        r.i32("ZERO")
        count = r.i32("numberOfCursorIDs")
        if count < 0 or count * 8 != r.remaining():
            raise BadLength(f"numberOfCursorIDs is {count} but {r.remaining()} bytes follow")
        ids = tuple(r.i64("cursorID") for _ in range(count))
        return cls(header.request_id, header.response_to, ids)


@dataclass(frozen=True)
class OpMsg:
    opcode: ClassVar[OpCode] = OpCode.MSG
    request_id: int
    response_to: int
    body: Document
    sequences: tuple[tuple[str, tuple[Document, ...]], ...] = ()
    flags: MsgFlags = NO_MSG_FLAGS

    def pack(self) -> bytes:
        parts = [_U32.pack(int(self.flags) & ~1), b"\x00"]
        parts.append(encode_document(self.body))
        for ident, docs in self.sequences:
            payload = _cstring(ident) + b"".join(encode_document(d) for d in docs)
            parts += [b"\x01", _I32.pack(4 + len(payload)), payload]
        return _frame(self.opcode, self.request_id, self.response_to, b"".join(parts))

    def merged(self) -> dict[str, Any]:
        """The command as one document: sequences become array fields."""
        out = dict(self.body)
        for ident, docs in self.sequences:
            out[ident] = list(docs)
        return out

    @classmethod
    def unpack(cls, header: Header, r: _Reader) -> OpMsg:
        flags = MsgFlags(r.u32("flagBits"))
        if flags & MsgFlags.CHECKSUM_PRESENT:
            if r.remaining() < 4:
                raise Truncated("body ends before the checksum")
            r.end -= 4  # the CRC-32C is not verified: loopback only
        body: Any = None
        sequences: list[tuple[str, tuple[Any, ...]]] = []
        while r.remaining():
            kind = r.data[r.pos]
            r.pos += 1
            if kind == 0:
                if body is not None:
                    raise ProtocolError("OP_MSG has two body sections")
                body = r.document("OP_MSG body")
            elif kind == 1:
                size = r.i32("section size")
                start = r.pos - 4
                if size < 5 or start + size > r.end:
                    raise BadLength(f"document sequence declares {size} bytes")
                outer_end, r.end = r.end, start + size
                ident = r.cstring("sequence identifier")
                docs = r.documents(f"sequence {ident!r} document")
                r.end = outer_end
                sequences.append((ident, docs))
            else:
                raise ProtocolError(f"unknown OP_MSG section kind {kind}")
        if body is None:
            raise Truncated("OP_MSG has no body section")
        return cls(header.request_id, header.response_to, body, tuple(sequences), flags)


Message = OpReply | OpUpdate | OpInsert | OpQuery | OpGetMore | OpDelete | OpKillCursors | OpMsg

_DECODERS: dict[int, Any] = {
    cls.opcode: cls
    for cls in (OpReply, OpUpdate, OpInsert, OpQuery, OpGetMore, OpDelete, OpKillCursors, OpMsg)
}


def decode_message(
    frame: bytes, *, raw: bool = False, max_size: int = DEFAULT_MAX_FRAME
) -> Message:
    """Decode one whole frame. `raw` keeps documents as RawBSONDocument (fast pass-through)."""
    header = parse_header(frame, max_size)
    if header.length != len(frame):
        raise BadLength(f"messageLength {header.length} but the frame has {len(frame)} bytes")
    decoder = _DECODERS.get(header.opcode)
    if decoder is None:
        name = "OP_COMPRESSED" if header.opcode == OpCode.COMPRESSED else f"opcode {header.opcode}"
        raise UnsupportedOpcode(f"{name} is not supported", header)
    reader = _Reader(frame, HEADER_SIZE, len(frame), RAW_OPTIONS if raw else DECODE_OPTIONS)
    message: Message = decoder.unpack(header, reader)
    return message


@dataclass(frozen=True)
class RawDocs:
    """Documents already encoded back to back (a cursor batch passed through untouched)."""

    count: int
    data: bytes


@dataclass(frozen=True)
class CursorBatch:
    cursor_id: int
    namespace: str
    documents: RawDocs


# BSON element sizes after the key: fixed, or computed from the bytes at `pos`.
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8}
_FIXED.update({0x13: 16, 0x7F: 0, 0xFF: 0})


def _element_end(data: bytes, kind: int, pos: int) -> int:
    if kind in _FIXED:
        return pos + _FIXED[kind]
    if kind in (0x02, 0x0D, 0x0E):
        return pos + 4 + int(_I32.unpack_from(data, pos)[0])
    if kind in (0x03, 0x04, 0x0F):
        return pos + int(_I32.unpack_from(data, pos)[0])
    if kind == 0x05:
        return pos + 5 + int(_I32.unpack_from(data, pos)[0])
    if kind == 0x0B:
        return data.index(b"\x00", data.index(b"\x00", pos) + 1) + 1
    if kind == 0x0C:
        return pos + 4 + int(_I32.unpack_from(data, pos)[0]) + 12
    raise InvalidDocument(f"unknown BSON element type {kind:#x}")


def _elements(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes, int, int]]:
    """(type, key, value start, value end) for each element of the document at `start`."""
    pos = start + 4
    while pos < end - 1:
        kind = data[pos]
        key_end = data.index(b"\x00", pos + 1)
        value_end = _element_end(data, kind, key_end + 1)
        if value_end > end - 1:
            raise BadLength("BSON element runs past its document")
        yield kind, data[pos + 1 : key_end], key_end + 1, value_end
        pos = value_end


def read_cursor(raw: bytes, batch_field: str) -> CursorBatch:
    """Read a reply's `cursor` subdocument without decoding its documents."""
    cursor_id, namespace, docs = 0, "", RawDocs(0, b"")
    field = batch_field.encode()
    try:
        for kind, key, start, end in _elements(raw, 0, len(raw)):
            if key == b"id" and kind in (0x10, 0x12):
                cursor_id = int((_I64 if kind == 0x12 else _I32).unpack_from(raw, start)[0])
            elif key == b"ns" and kind == 0x02:
                namespace = raw[start + 4 : end - 1].decode("utf-8")
            elif key == field and kind == 0x04:
                parts = []
                for item_kind, _, item_start, item_end in _elements(raw, start, end):
                    if item_kind != 0x03:
                        raise InvalidDocument("a cursor batch holds a non-document")
                    parts.append(raw[item_start:item_end])
                docs = RawDocs(len(parts), b"".join(parts))
    except (ValueError, IndexError, struct.error) as exc:
        raise InvalidDocument(f"unreadable cursor document: {exc}") from exc
    return CursorBatch(cursor_id, namespace, docs)


def reply_bytes(
    request_id: int,
    response_to: int,
    documents: Sequence[Document] | RawDocs,
    *,
    cursor_id: int = 0,
    starting_from: int = 0,
    flags: ReplyFlags = NO_REPLY_FLAGS,
) -> bytes:
    """Build an OP_REPLY frame; RawDocs are copied through without re-encoding."""
    if isinstance(documents, RawDocs):
        fixed = _REPLY_FIXED.pack(int(flags), cursor_id, starting_from, documents.count)
        return _frame(OpCode.REPLY, request_id, response_to, fixed + documents.data)
    docs = tuple(documents)
    return OpReply(request_id, response_to, flags, cursor_id, starting_from, docs).pack()


__all__ = [
    "DEFAULT_MAX_FRAME",
    "BadLength",
    "CursorBatch",
    "DeleteFlags",
    "FrameSplitter",
    "Header",
    "InsertFlags",
    "InvalidDocument",
    "Message",
    "MsgFlags",
    "OpCode",
    "OpDelete",
    "OpGetMore",
    "OpInsert",
    "OpKillCursors",
    "OpMsg",
    "OpQuery",
    "OpReply",
    "OpUpdate",
    "ProtocolError",
    "QueryFlags",
    "RawDocs",
    "ReplyFlags",
    "TrailingBytes",
    "Truncated",
    "UnsupportedOpcode",
    "UnterminatedString",
    "UpdateFlags",
    "decode_document",
    "decode_message",
    "encode_document",
    "parse_header",
    "read_cursor",
    "reply_bytes",
]
