"""Table tests for the wire codec: known frames in, dataclasses out, and back."""

from __future__ import annotations

import struct

import bson
import pytest

from reprokit import wire
from reprokit.wire import (
    DeleteFlags,
    InsertFlags,
    MsgFlags,
    OpDelete,
    OpGetMore,
    OpInsert,
    OpKillCursors,
    OpMsg,
    OpQuery,
    OpReply,
    OpUpdate,
    QueryFlags,
    ReplyFlags,
    UpdateFlags,
)


def frame(opcode: int, body: bytes, request_id: int = 7, response_to: int = 0) -> bytes:
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, opcode) + body


def i32(v: int) -> bytes:
    return struct.pack("<i", v)


def i64(v: int) -> bytes:
    return struct.pack("<q", v)


DOC = bson.encode({"a": 1})
SEL = bson.encode({"b": 1})

# (name, hand-built frame, expected message)
KNOWN = [
    (
        "query with selector",
        frame(2004, i32(4 | 64) + b"db.c\x00" + i32(5) + i32(-1) + DOC + SEL),
        OpQuery(7, 0, QueryFlags.SLAVE_OK | QueryFlags.EXHAUST, "db.c", 5, -1, {"a": 1}, {"b": 1}),
    ),
    (
        "query without selector",
        frame(2004, i32(0) + b"db.$cmd\x00" + i32(0) + i32(1) + DOC),
        OpQuery(7, 0, QueryFlags(0), "db.$cmd", 0, 1, {"a": 1}, None),
    ),
    (
        "get more with an int64 cursor id",
        frame(2005, i32(0) + b"db.c\x00" + i32(10) + i64(2**62 + 5)),
        OpGetMore(7, 0, "db.c", 10, 2**62 + 5),
    ),
    (
        "kill cursors, negative int64 id",
        frame(2007, i32(0) + i32(2) + i64(1) + i64(-(2**63))),
        OpKillCursors(7, 0, (1, -(2**63))),
    ),
    (
        "insert two documents, continue on error",
        frame(2002, i32(1) + b"db.c\x00" + DOC + SEL),
        OpInsert(7, 0, "db.c", InsertFlags.CONTINUE_ON_ERROR, ({"a": 1}, {"b": 1})),
    ),
    (
        "update upsert multi",
        frame(2001, i32(0) + b"db.c\x00" + i32(3) + SEL + DOC),
        OpUpdate(7, 0, "db.c", UpdateFlags.UPSERT | UpdateFlags.MULTI_UPDATE, {"b": 1}, {"a": 1}),
    ),
    (
        "delete single",
        frame(2006, i32(0) + b"db.c\x00" + i32(1) + SEL),
        OpDelete(7, 0, "db.c", DeleteFlags.SINGLE_REMOVE, {"b": 1}),
    ),
    (
        "reply with cursor id and flags",
        frame(1, i32(8) + i64(99) + i32(101) + i32(2) + DOC + SEL, response_to=3),
        OpReply(7, 3, ReplyFlags.AWAIT_CAPABLE, 99, 101, ({"a": 1}, {"b": 1})),
    ),
    (
        "op_msg body and document sequence",
        frame(
            2013,
            i32(0)
            + b"\x00"
            + DOC
            + b"\x01"
            + i32(4 + len(b"documents\x00") + len(SEL))
            + b"documents\x00"
            + SEL,
        ),
        OpMsg(7, 0, {"a": 1}, (("documents", ({"b": 1},)),), MsgFlags(0)),
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_decode_known_frames(name: str, data: bytes, expected: wire.Message) -> None:
    assert wire.decode_message(data) == expected


@pytest.mark.parametrize(("name", "data", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_pack_reproduces_the_frame(name: str, data: bytes, expected: wire.Message) -> None:
    assert expected.pack() == data


def test_flags_print_by_name() -> None:
    msg = wire.decode_message(KNOWN[0][1])
    assert isinstance(msg, OpQuery)
    assert "EXHAUST" in repr(msg.flags) and "SLAVE_OK" in repr(msg.flags)


def test_op_msg_merged_and_checksum_skipped() -> None:
    body = i32(int(MsgFlags.CHECKSUM_PRESENT)) + b"\x00" + DOC + b"CRC!"
    msg = wire.decode_message(frame(2013, body))
    assert isinstance(msg, OpMsg)
    assert msg.merged() == {"a": 1}
    assert msg.flags & MsgFlags.CHECKSUM_PRESENT


def test_raw_mode_keeps_bytes() -> None:
    data = OpReply(1, 2, ReplyFlags(0), 0, 0, ({"a": {"b": [1, 2]}},)).pack()
    msg = wire.decode_message(data, raw=True)
    assert isinstance(msg, OpReply)
    assert bytes(msg.documents[0].raw) == bson.encode({"a": {"b": [1, 2]}})


BAD = [
    ("length below header", struct.pack("<iiii", 15, 1, 0, 2004), wire.BadLength),
    ("negative length", struct.pack("<iiii", -5, 1, 0, 2004), wire.BadLength),
    ("huge length", struct.pack("<iiii", 2**31 - 1, 1, 0, 2004), wire.BadLength),
    ("unknown opcode", frame(9999, b""), wire.UnsupportedOpcode),
    ("compressed", frame(2012, i32(2004) + i32(0) + b"\x00"), wire.UnsupportedOpcode),
    ("unterminated name", frame(2004, i32(0) + b"db.c"), wire.UnterminatedString),
    (
        "name not utf-8",
        frame(2004, i32(0) + b"\xff\xfe\x00" + i32(0) + i32(0) + DOC),
        wire.UnterminatedString,
    ),
    ("truncated before query", frame(2004, i32(0) + b"db.c\x00" + i32(0)), wire.Truncated),
    (
        "document length past end",
        frame(2004, i32(0) + b"db.c\x00" + i32(0) + i32(0) + i32(99) + b"\x00"),
        wire.BadLength,
    ),
    (
        "document length below 5",
        frame(2004, i32(0) + b"db.c\x00" + i32(0) + i32(0) + i32(4)),
        wire.BadLength,
    ),
    (
        "invalid bson element",
        frame(
            2004,
            i32(0)
            + b"db.c\x00"
            + i32(0)
            + i32(0)
            + b"\x0c\x00\x00\x00\x99a\x00\x01\x00\x00\x00\x00",
        ),
        wire.InvalidDocument,
    ),
    (
        "bson missing terminator",
        frame(2004, i32(0) + b"db.c\x00" + i32(0) + i32(0) + DOC[:-1] + b"\x01"),
        wire.InvalidDocument,
    ),
    (
        "garbage after selector",
        frame(2004, i32(0) + b"db.c\x00" + i32(0) + i32(0) + DOC + SEL + b"xx"),
        wire.TrailingBytes,
    ),
    (
        "get more trailing bytes",
        frame(2005, i32(0) + b"db.c\x00" + i32(0) + i64(1) + b"z"),
        wire.TrailingBytes,
    ),
    ("kill cursors count mismatch", frame(2007, i32(0) + i32(3) + i64(1)), wire.BadLength),
    ("kill cursors negative count", frame(2007, i32(0) + i32(-1)), wire.BadLength),
    ("insert without documents", frame(2002, i32(0) + b"db.c\x00"), wire.Truncated),
    ("reply count mismatch", frame(1, i32(0) + i64(0) + i32(0) + i32(2) + DOC), wire.BadLength),
    ("op_msg without body", frame(2013, i32(0)), wire.Truncated),
    ("op_msg two bodies", frame(2013, i32(0) + b"\x00" + DOC + b"\x00" + DOC), wire.ProtocolError),
    ("op_msg unknown section", frame(2013, i32(0) + b"\x07" + DOC), wire.ProtocolError),
    (
        "op_msg sequence too long",
        frame(2013, i32(0) + b"\x00" + DOC + b"\x01" + i32(500) + b"x\x00"),
        wire.BadLength,
    ),
    ("frame shorter than its length", frame(2004, i32(0) + b"db.c\x00")[:-2], wire.BadLength),
]


@pytest.mark.parametrize(("name", "data", "error"), BAD, ids=[b[0] for b in BAD])
def test_malformed_frames_raise_typed_errors(
    name: str, data: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        wire.decode_message(data)


def test_all_errors_are_protocol_errors() -> None:
    for _, data, _ in BAD:
        with pytest.raises(wire.ProtocolError):
            wire.decode_message(data)


def test_splitter_hands_out_whole_frames_from_any_chunking() -> None:
    stream = b"".join(k[1] for k in KNOWN)
    for size in (1, 3, 16, 17, 1000):
        splitter = wire.FrameSplitter()
        frames = []
        for start in range(0, len(stream), size):
            splitter.feed(stream[start : start + size])
            while (f := splitter.next_frame()) is not None:
                frames.append(f)
        assert frames == [k[1] for k in KNOWN]
        assert splitter.buffered == 0


def test_splitter_rejects_a_bad_length_before_the_body_arrives() -> None:
    splitter = wire.FrameSplitter(max_size=1000)
    splitter.feed(struct.pack("<iiii", 5000, 1, 0, 2004))
    with pytest.raises(wire.BadLength):
        splitter.next_frame()
    fresh = wire.FrameSplitter()
    fresh.feed(b"\x20\x00")
    assert fresh.next_frame() is None and fresh.needed() == 14


def test_reply_bytes_builds_an_op_reply() -> None:
    data = wire.reply_bytes(
        5, 9, [{"x": 1}], cursor_id=-2, starting_from=3, flags=ReplyFlags.CURSOR_NOT_FOUND
    )
    assert wire.decode_message(data) == OpReply(
        5, 9, ReplyFlags.CURSOR_NOT_FOUND, -2, 3, ({"x": 1},)
    )


def test_datetimes_outside_python_range_round_trip() -> None:
    raw = bson.encode({"d": bson.DatetimeMS(-(2**62))})
    data = frame(2002, i32(0) + b"db.c\x00" + raw)
    msg = wire.decode_message(data)
    assert msg.pack() == data
