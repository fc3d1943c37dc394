"""Property and fuzz tests: the codec and translator only ever fail with ProtocolError.

Fast tier: a few hundred generated frames per property. Slow tier: 10,000+ frames through
codec and translator, and thousands of mutated frames at the live gateway, which must keep
answering a bystander connection. Cases the fuzzer found are kept in REGRESSIONS.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gateway import stack  # noqa: F401  (the live SecantusDB + gateway fixture)

from reprokit import wire
from reprokit.translate import Translator
from reprokit.wire import QueryFlags

names = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
documents = st.recursive(
    st.dictionaries(names, scalars, max_size=4),
    lambda inner: st.dictionaries(
        names, st.one_of(scalars, inner, st.lists(inner, max_size=3)), max_size=4
    ),
    max_leaves=12,
)
namespaces = st.builds(lambda a, b: f"{a}.{b}", names, names)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
flags32 = st.integers(0, 2**32 - 1)
ids = st.integers(0, 2**31 - 1)

messages = st.one_of(
    st.builds(
        wire.OpQuery,
        ids,
        ids,
        flags32.map(QueryFlags),
        namespaces,
        int32,
        int32,
        documents,
        st.none() | documents,
    ),
    st.builds(wire.OpGetMore, ids, ids, namespaces, int32, int64),
    st.builds(wire.OpKillCursors, ids, ids, st.lists(int64, max_size=5).map(tuple)),
    st.builds(
        wire.OpInsert,
        ids,
        ids,
        namespaces,
        flags32.map(wire.InsertFlags),
        st.lists(documents, min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        wire.OpUpdate, ids, ids, namespaces, flags32.map(wire.UpdateFlags), documents, documents
    ),
    st.builds(wire.OpDelete, ids, ids, namespaces, flags32.map(wire.DeleteFlags), documents),
    st.builds(
        wire.OpReply,
        ids,
        ids,
        flags32.map(wire.ReplyFlags),
        int64,
        int32,
        st.lists(documents, max_size=3).map(tuple),
    ),
    st.builds(
        wire.OpMsg,
        ids,
        ids,
        documents,
        st.lists(st.tuples(names, st.lists(documents, max_size=2).map(tuple)), max_size=2).map(
            tuple
        ),
        st.sampled_from([0, 2, 1 << 16]).map(wire.MsgFlags),
    ),
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame, then damaged: bytes flipped, cut, extended, or its length lied about."""
    data = bytearray(draw(messages).pack())
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "extend", "length", "opcode", "insert"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "extend":
            data += draw(st.binary(max_size=20))
        elif how == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif how == "length" and len(data) >= 4:
            struct.pack_into("<i", data, 0, draw(int32))
        elif how == "opcode" and len(data) >= 16:
            struct.pack_into(
                "<i",
                data,
                12,
                draw(st.sampled_from([1, 2001, 2002, 2004, 2005, 2006, 2007, 2012, 2013, 0, -1])),
            )
    return bytes(data)


def _fix_length(data: bytes) -> bytes:
    """Make the header's length honest, so the body parser (not the splitter) is exercised."""
    if len(data) < 16:
        return data
    return struct.pack("<i", len(data)) + data[4:]


def check_decode(data: bytes) -> None:
    try:
        msg = wire.decode_message(data)
    except wire.ProtocolError:
        return
    # reserved ZERO fields are ignored like mongod did, so compare re-decoded messages
    if not isinstance(msg, wire.OpMsg) or not msg.flags & wire.MsgFlags.CHECKSUM_PRESENT:
        assert wire.decode_message(msg.pack()) == msg


def check_translate(data: bytes) -> None:
    tr = Translator()
    try:
        action = tr.client_frame(data)
    except wire.ProtocolError:
        return
    if action.to_upstream is not None:
        assert isinstance(wire.decode_message(action.to_upstream), wire.OpMsg)


def check_splitter(data: bytes) -> None:
    splitter = wire.FrameSplitter(max_size=1 << 20)
    splitter.feed(data)
    try:
        while (frame := splitter.next_frame()) is not None:
            check_decode(frame)
    except wire.ProtocolError:
        pass


@given(messages)
@settings(max_examples=300, deadline=None)
def test_every_message_round_trips(msg: wire.Message) -> None:
    assert wire.decode_message(msg.pack()) == msg


@given(mutated_frames())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_frames_fail_only_with_protocol_errors(data: bytes) -> None:
    check_decode(data)
    check_decode(_fix_length(data))
    check_translate(_fix_length(data))
    check_splitter(data)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_fail_only_with_protocol_errors(data: bytes) -> None:
    check_decode(data)
    check_decode(_fix_length(data))
    check_splitter(data)


def _frame(opcode: int, body: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(body), 1, 0, opcode) + body


def _deeply_nested(depth: int) -> bytes:
    inner = b"\x05\x00\x00\x00\x00"
    for _ in range(depth):
        payload = b"\x03a\x00" + inner
        inner = struct.pack("<i", 4 + len(payload) + 1) + payload + b"\x00"
    return inner


# Found while fuzzing; each once escaped as a non-ProtocolError or was accepted wrongly.
REGRESSIONS = [
    # a BSON int32 length of -1 inside an OP_INSERT
    _frame(2002, b"\x00\x00\x00\x00a.b\x00\xff\xff\xff\xff"),
    # a nested document whose own length overruns its parent
    _frame(
        2004,
        b"\x00" * 4
        + b"a.b\x00"
        + b"\x00" * 8
        + b"\x10\x00\x00\x00\x03x\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00",
    ),
    # a deeply nested document (recursion in the decoder)
    _frame(2002, b"\x00" * 4 + b"a.b\x00" + _deeply_nested(5000)),
    # OP_MSG whose checksum flag leaves fewer than 4 bytes
    _frame(2013, struct.pack("<I", 1) + b"\x00"),
    # OP_MSG kind-1 section with a size of 4 (no identifier)
    _frame(2013, b"\x00" * 4 + b"\x00" + bson.encode({"a": 1}) + b"\x01\x04\x00\x00\x00"),
    # invalid UTF-8 in a BSON string
    _frame(
        2004,
        b"\x00" * 4
        + b"a.b\x00"
        + b"\x00" * 8
        + b"\x0e\x00\x00\x00\x02s\x00\x02\x00\x00\x00\xff\x00\x00",
    ),
    # kill cursors with a count that overflows when multiplied
    _frame(2007, b"\x00" * 4 + struct.pack("<i", 2**30) + b"\x00" * 8),
]


@pytest.mark.parametrize("data", REGRESSIONS, ids=[f"case{i}" for i in range(len(REGRESSIONS))])
def test_regressions(data: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.decode_message(data)
    check_translate(data)


@pytest.mark.slow
@given(st.one_of(mutated_frames(), st.binary(max_size=300)))
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
def test_slow_tier_ten_thousand_frames(data: bytes) -> None:
    check_decode(data)
    check_decode(_fix_length(data))
    check_translate(_fix_length(data))
    check_splitter(data)


@pytest.mark.slow
def test_slow_tier_live_gateway_survives_mutated_frames(stack: Any) -> None:  # noqa: F811
    """2,000 damaged frames, each on its own connection, while a bystander keeps working."""
    rng = random.Random(20150512)
    samples = [_mutate(rng, m) for m in _SEED_FRAMES for _ in range(40)]
    bystander = socket.create_connection(stack.address, timeout=10)
    try:
        for i in range(2000):
            data = samples[i % len(samples)]
            if rng.random() < 0.5:
                data = _fix_length(data)
            with socket.create_connection(stack.address, timeout=10) as victim:
                victim.sendall(data)
                victim.shutdown(socket.SHUT_WR)
                victim.settimeout(10)
                while True:  # the gateway answers or closes; it never hangs
                    try:
                        if not victim.recv(65536):
                            break
                    except ConnectionResetError:
                        break
            if i % 100 == 0:
                _ping(bystander, i + 1)
        _ping(bystander, 99999)
    finally:
        bystander.close()


def _ping(sock: socket.socket, request_id: int) -> None:
    sock.sendall(
        wire.OpQuery(request_id, 0, QueryFlags(0), "admin.$cmd", 0, -1, {"ping": 1}).pack()
    )
    splitter = wire.FrameSplitter()
    while (frame := splitter.next_frame()) is None:
        chunk = sock.recv(65536)
        assert chunk, "the gateway dropped a healthy connection"
        splitter.feed(chunk)
    reply: Any = wire.decode_message(frame)
    assert reply.response_to == request_id and reply.documents[0]["ok"] == 1.0


_SEED_FRAMES = [
    wire.OpQuery(
        1, 0, QueryFlags(0), "db.c", 0, 0, {"$query": {"a": 1}, "$orderby": {"b": 1}}
    ).pack(),
    wire.OpQuery(1, 0, QueryFlags(0), "db.$cmd", 0, -1, {"count": "c"}).pack(),
    wire.OpGetMore(1, 0, "db.c", 0, 12345).pack(),
    wire.OpKillCursors(1, 0, (1, 2)).pack(),
    wire.OpInsert(1, 0, "db.fuzz", wire.InsertFlags(0), ({"a": 1},)).pack(),
    wire.OpMsg(1, 0, {"ping": 1, "$db": "admin"}).pack(),
]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data)) if data else 0
        how = rng.choice(["flip", "cut", "extend", "length"])
        if how == "flip" and data:
            data[i] = rng.randrange(256)
        elif how == "cut":
            del data[i:]
        elif how == "extend":
            data += rng.randbytes(rng.randint(1, 20))
        elif len(data) >= 4:
            struct.pack_into("<i", data, 0, rng.randint(-(2**31), 2**31 - 1))
    return bytes(data)


@given(st.lists(documents, max_size=5), int64, names)
@settings(max_examples=300, deadline=None)
def test_read_cursor_copies_the_batch_documents_exactly(
    docs: list[dict[str, Any]], cursor_id: int, ns: str
) -> None:
    raw = bson.encode({"firstBatch": docs, "id": bson.Int64(cursor_id), "ns": ns, "x": 1.5})
    batch = wire.read_cursor(raw, "firstBatch")
    assert batch.cursor_id == cursor_id and batch.namespace == ns
    assert batch.documents == wire.RawDocs(len(docs), b"".join(bson.encode(d) for d in docs))


@given(st.binary(max_size=120), st.lists(documents, max_size=3))
@settings(max_examples=300, deadline=None)
def test_read_cursor_on_damaged_bytes_fails_only_with_protocol_errors(
    noise: bytes, docs: list[dict[str, Any]]
) -> None:
    raw = bytearray(bson.encode({"nextBatch": docs, "id": bson.Int64(3)}))
    for i, b in enumerate(noise[: len(raw)]):
        if b % 3 == 0:
            raw[(i * 7) % len(raw)] = b
    try:
        wire.read_cursor(bytes(raw), "nextBatch")
    except wire.ProtocolError:
        pass
