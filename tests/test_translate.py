"""The translator alone: legacy frames in, OP_MSG commands out, scripted upstream replies back.

The upstream here is a table of reply documents (the translator is sans-IO, so no server
is needed to check what it asks and what it answers); the live behaviour against SecantusDB
is covered by test_gateway.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
import pytest

from reprokit import wire
from reprokit.translate import CursorInfo, Translator, rewrite_hello
from reprokit.wire import OpMsg, OpReply, QueryFlags, ReplyFlags

BIG_ID = 2**62 + 17


def upstream_reply(to: bytes, body: Mapping[str, Any]) -> bytes:
    request = wire.decode_message(to)
    return OpMsg(999, request.request_id, body).pack()


def exchange(
    tr: Translator, client: wire.Message, replies: list[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[wire.Message]]:
    """Run one client message; return the commands sent upstream and the client frames."""
    commands: list[dict[str, Any]] = []
    out = b""
    action = tr.client_frame(client.pack())
    queue = list(replies)
    while True:
        out += action.to_client
        if action.to_upstream is None:
            break
        msg = wire.decode_message(action.to_upstream)
        assert isinstance(msg, OpMsg)
        commands.append(msg.merged())
        action = tr.upstream_frame(upstream_reply(action.to_upstream, queue.pop(0)))
    assert not queue, "not every scripted reply was asked for"
    splitter = wire.FrameSplitter()
    splitter.feed(out)
    frames = []
    while (frame := splitter.next_frame()) is not None:
        frames.append(wire.decode_message(frame))
    return commands, frames


def query(
    ns: str, spec: dict[str, Any], *, skip: int = 0, n: int = 0, flags: int = 0, fields: Any = None
) -> wire.OpQuery:
    return wire.OpQuery(11, 0, QueryFlags(flags), ns, skip, n, spec, fields)


def find_reply(batch: list[dict[str, Any]], cursor_id: int = 0, ns: str = "db.c") -> dict[str, Any]:
    return {"cursor": {"firstBatch": batch, "id": bson.Int64(cursor_id), "ns": ns}, "ok": 1.0}


def more_reply(batch: list[dict[str, Any]], cursor_id: int = 0, ns: str = "db.c") -> dict[str, Any]:
    return {"cursor": {"nextBatch": batch, "id": bson.Int64(cursor_id), "ns": ns}, "ok": 1.0}


FIND_CASES = [
    ("plain", query("db.c", {"a": 1}), {"find": "c", "filter": {"a": 1}, "$db": "db"}),
    (
        "wrapped with orderby, hint, comment, maxTimeMS",
        query(
            "db.c",
            {
                "$query": {"a": 1},
                "$orderby": {"b": -1},
                "$hint": "b_1",
                "$comment": "x",
                "$maxTimeMS": 50,
            },
        ),
        {
            "find": "c",
            "filter": {"a": 1},
            "sort": {"b": -1},
            "hint": "b_1",
            "comment": "x",
            "maxTimeMS": 50,
            "$db": "db",
        },
    ),
    (
        "mongod's unprefixed query/orderby wrapper",
        query("db.c", {"query": {"a": 1}, "orderby": {"b": 1}}),
        {"find": "c", "filter": {"a": 1}, "sort": {"b": 1}, "$db": "db"},
    ),
    (
        "min max returnKey showDiskLoc; snapshot and maxScan dropped",
        query(
            "db.c",
            {
                "$query": {},
                "$min": {"a": 1},
                "$max": {"a": 5},
                "$returnKey": True,
                "$showDiskLoc": True,
                "$snapshot": True,
                "$maxScan": 10,
            },
        ),
        {
            "find": "c",
            "filter": {},
            "min": {"a": 1},
            "max": {"a": 5},
            "returnKey": True,
            "showRecordId": True,
            "$db": "db",
        },
    ),
    (
        "readPreference kept for the server",
        query(
            "db.c",
            {"$query": {}, "$readPreference": {"mode": "secondaryPreferred"}},
            flags=QueryFlags.SLAVE_OK,
        ),
        {"find": "c", "filter": {}, "$readPreference": {"mode": "secondaryPreferred"}, "$db": "db"},
    ),
    (
        "skip and projection",
        query("db.a.b", {}, skip=3, fields={"x": 1}),
        {"find": "a.b", "filter": {}, "projection": {"x": 1}, "skip": 3, "$db": "db"},
    ),
    (
        "numberToReturn 5 is a batch size",
        query("db.c", {}, n=5),
        {"find": "c", "filter": {}, "batchSize": 5, "$db": "db"},
    ),
    (
        "numberToReturn -5: one batch, closed",
        query("db.c", {}, n=-5),
        {"find": "c", "filter": {}, "limit": 5, "singleBatch": True, "$db": "db"},
    ),
    (
        "numberToReturn 1 means -1",
        query("db.c", {}, n=1),
        {"find": "c", "filter": {}, "limit": 1, "singleBatch": True, "$db": "db"},
    ),
    (
        "cursor flags",
        query(
            "db.c",
            {},
            flags=QueryFlags.TAILABLE_CURSOR
            | QueryFlags.AWAIT_DATA
            | QueryFlags.NO_CURSOR_TIMEOUT
            | QueryFlags.PARTIAL,
        ),
        {
            "find": "c",
            "filter": {},
            "tailable": True,
            "awaitData": True,
            "noCursorTimeout": True,
            "allowPartialResults": True,
            "$db": "db",
        },
    ),
]


@pytest.mark.parametrize(("name", "msg", "expected"), FIND_CASES, ids=[c[0] for c in FIND_CASES])
def test_query_becomes_find(name: str, msg: wire.OpQuery, expected: dict[str, Any]) -> None:
    commands, frames = exchange(Translator(), msg, [find_reply([{"_id": 1}])])
    assert commands == [expected]
    assert frames == [OpReply(1, 11, ReplyFlags.AWAIT_CAPABLE, 0, 0, ({"_id": 1},))]


def test_cursor_lifecycle_get_more_and_kill() -> None:
    shared: dict[int, CursorInfo] = {}
    tr = Translator(cursors=shared)
    _, frames = exchange(tr, query("db.c", {}), [find_reply([{"i": 0}, {"i": 1}], BIG_ID)])
    assert isinstance(frames[0], OpReply) and frames[0].cursor_id == BIG_ID
    assert shared[BIG_ID].namespace == "db.c"
    commands, frames = exchange(
        tr, wire.OpGetMore(12, 0, "db.c", 0, BIG_ID), [more_reply([{"i": 2}], BIG_ID)]
    )
    assert commands == [{"getMore": BIG_ID, "collection": "c", "$db": "db"}]
    assert frames == [OpReply(2, 12, ReplyFlags.AWAIT_CAPABLE, BIG_ID, 2, ({"i": 2},))]
    # another connection of the same gateway kills it: the shared table knows the namespace
    other = Translator(cursors=shared)
    commands, frames = exchange(other, wire.OpKillCursors(13, 0, (BIG_ID, 5)), [{"ok": 1.0}])
    assert commands == [{"killCursors": "c", "cursors": [BIG_ID], "$db": "db"}]
    assert frames == [] and not shared


def test_get_more_negative_limit_closes_the_cursor() -> None:
    tr = Translator()
    exchange(tr, query("db.c", {}), [find_reply([], 77)])
    commands, frames = exchange(
        tr,
        wire.OpGetMore(12, 0, "db.c", -2, 77),
        [more_reply([{"a": 1}, {"a": 2}], 77), {"ok": 1.0}],
    )
    assert commands[0]["batchSize"] == 2 and commands[1]["killCursors"] == "c"
    assert isinstance(frames[0], OpReply) and frames[0].cursor_id == 0


def test_cursor_not_found_and_query_failure() -> None:
    tr = Translator()
    _, frames = exchange(
        tr, wire.OpGetMore(12, 0, "db.c", 0, 5), [{"ok": 0.0, "errmsg": "gone", "code": 43}]
    )
    assert frames == [OpReply(1, 12, ReplyFlags.CURSOR_NOT_FOUND, 0, 0, ())]
    _, frames = exchange(
        tr, query("db.c", {"$bad": 1}), [{"ok": 0.0, "errmsg": "unknown operator", "code": 2}]
    )
    reply = frames[0]
    assert isinstance(reply, OpReply) and reply.flags & ReplyFlags.QUERY_FAILURE
    assert reply.documents[0]["$err"] == "unknown operator" and reply.documents[0]["code"] == 2


def test_exhaust_streams_every_batch_chained_by_request_id() -> None:
    tr = Translator()
    replies = [find_reply([{"i": 0}], 9), more_reply([{"i": 1}], 9), more_reply([{"i": 2}], 0)]
    commands, frames = exchange(tr, query("db.c", {}, flags=QueryFlags.EXHAUST), replies)
    assert [c.get("getMore") for c in commands] == [None, 9, 9]
    assert [f.cursor_id for f in frames if isinstance(f, OpReply)] == [9, 9, 0]
    assert [f.starting_from for f in frames if isinstance(f, OpReply)] == [0, 1, 2]
    assert frames[0].response_to == 11
    assert frames[1].response_to == frames[0].request_id
    assert frames[2].response_to == frames[1].request_id


def test_explain_modifier() -> None:
    commands, frames = exchange(
        Translator(),
        query("db.c", {"$query": {"a": 1}, "$explain": True}),
        [{"queryPlanner": {}, "ok": 1.0}],
    )
    assert commands == [
        {
            "explain": {"find": "c", "filter": {"a": 1}},
            "verbosity": "allPlansExecution",
            "$db": "db",
        }
    ]
    assert isinstance(frames[0], OpReply) and "queryPlanner" in frames[0].documents[0]


def test_commands_pass_through_and_write_arrays_become_sequences() -> None:
    tr = Translator()
    spec = {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}], "ordered": True}
    action = tr.client_frame(query("db.$cmd", spec, n=-1).pack())
    assert action.to_upstream is not None
    sent = wire.decode_message(action.to_upstream)
    assert isinstance(sent, OpMsg)
    assert sent.sequences == (("documents", ({"_id": 1}, {"_id": 2})),)
    action = tr.upstream_frame(upstream_reply(action.to_upstream, {"n": 2, "ok": 1.0}))
    reply = wire.decode_message(action.to_client)
    assert (
        isinstance(reply, OpReply)
        and reply.documents == ({"n": 2, "ok": 1.0},)
        and reply.flags == 0
    )


def test_wrapped_command_and_command_cursor_is_remembered() -> None:
    tr = Translator()
    commands, _ = exchange(
        tr,
        query(
            "db.$cmd",
            {"$query": {"listCollections": 1}, "$readPreference": {"mode": "primary"}},
            n=-1,
        ),
        [find_reply([], 55, ns="db.$cmd.listCollections")],
    )
    assert commands == [{"listCollections": 1, "$readPreference": {"mode": "primary"}, "$db": "db"}]
    assert tr.cursors[55].namespace == "db.$cmd.listCollections"


def test_legacy_aggregate_without_cursor_collects_result() -> None:
    commands, frames = exchange(
        Translator(),
        query("db.$cmd", {"aggregate": "c", "pipeline": []}, n=-1),
        [find_reply([{"a": 1}], 8), more_reply([{"a": 2}], 0)],
    )
    assert commands[0]["cursor"] == {} and commands[1]["getMore"] == 8
    assert isinstance(frames[0], OpReply) and frames[0].documents[0] == {
        "result": [{"a": 1}, {"a": 2}],
        "ok": 1.0,
    }


WRITE_CASES = [
    (
        wire.OpInsert(1, 0, "db.c", wire.InsertFlags.CONTINUE_ON_ERROR, ({"_id": 1},)),
        {
            "insert": "c",
            "ordered": False,
            "writeConcern": {"w": 1},
            "documents": [{"_id": 1}],
            "$db": "db",
        },
        {"n": 1, "ok": 1.0},
        {"n": 1, "err": None},
    ),
    (
        wire.OpUpdate(1, 0, "db.c", wire.UpdateFlags.UPSERT, {"_id": 5}, {"$set": {"a": 1}}),
        {
            "update": "c",
            "ordered": True,
            "writeConcern": {"w": 1},
            "updates": [{"q": {"_id": 5}, "u": {"$set": {"a": 1}}, "upsert": True, "multi": False}],
            "$db": "db",
        },
        {"n": 1, "nModified": 0, "upserted": [{"index": 0, "_id": 5}], "ok": 1.0},
        {"n": 1, "err": None, "updatedExisting": False, "upserted": 5},
    ),
    (
        wire.OpUpdate(1, 0, "db.c", wire.UpdateFlags.MULTI_UPDATE, {}, {"$set": {"a": 1}}),
        {
            "update": "c",
            "ordered": True,
            "writeConcern": {"w": 1},
            "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "upsert": False, "multi": True}],
            "$db": "db",
        },
        {"n": 3, "nModified": 3, "ok": 1.0},
        {"n": 3, "err": None, "updatedExisting": True},
    ),
    (
        wire.OpDelete(1, 0, "db.c", wire.DeleteFlags.SINGLE_REMOVE, {"a": 1}),
        {
            "delete": "c",
            "ordered": True,
            "writeConcern": {"w": 1},
            "deletes": [{"q": {"a": 1}, "limit": 1}],
            "$db": "db",
        },
        {"n": 1, "ok": 1.0},
        {"n": 1, "err": None},
    ),
    (
        wire.OpInsert(1, 0, "db.c", wire.InsertFlags(0), ({"_id": 1},)),
        {
            "insert": "c",
            "ordered": True,
            "writeConcern": {"w": 1},
            "documents": [{"_id": 1}],
            "$db": "db",
        },
        {"n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 dup"}], "ok": 1.0},
        {"n": 0, "err": "E11000 dup", "code": 11000},
    ),
]


@pytest.mark.parametrize(("msg", "command", "reply", "gle"), WRITE_CASES)
def test_unacknowledged_write_then_get_last_error(
    msg: wire.Message, command: dict[str, Any], reply: dict[str, Any], gle: dict[str, Any]
) -> None:
    tr = Translator(connection_id=4)
    commands, frames = exchange(tr, msg, [reply])
    assert commands == [command] and frames == []
    _, frames = exchange(tr, query("db.$cmd", {"getLastError": 1}, n=-1), [])
    doc = frames[0].documents[0]  # type: ignore[union-attr]
    assert {k: doc[k] for k in gle} == gle
    assert doc["ok"] == 1.0 and doc["connectionId"] == 4
    # any other operation resets it, as on mongod
    exchange(tr, query("db.c", {}), [find_reply([])])
    _, frames = exchange(tr, query("db.$cmd", {"getlasterror": 1}, n=-1), [])
    assert frames[0].documents[0]["n"] == 0 and frames[0].documents[0]["err"] is None  # type: ignore[union-attr]


def test_rewrite_hello_maps_every_member_field() -> None:
    reply = {
        "hosts": ["a:1", "b:2"],
        "passives": ["c:3"],
        "arbiters": ["d:4"],
        "primary": "a:1",
        "me": "b:2",
        "maxWireVersion": 27,
        "compression": ["zlib"],
        "ok": 1.0,
    }
    mapping = {"a:1": "gw:11", "b:2": "gw:12", "c:3": "gw:13", "d:4": "gw:14"}
    out = rewrite_hello(reply, mapping, 3)
    assert out["hosts"] == ["gw:11", "gw:12"] and out["passives"] == ["gw:13"]
    assert out["arbiters"] == ["gw:14"] and out["primary"] == "gw:11" and out["me"] == "gw:12"
    assert out["maxWireVersion"] == 3 and "compression" not in out


def test_is_master_over_op_query_is_rewritten() -> None:
    tr = Translator({"127.0.0.1:5000": "127.0.0.1:6000"})
    hello = {
        "ismaster": True,
        "setName": "rs",
        "hosts": ["127.0.0.1:5000"],
        "me": "127.0.0.1:5000",
        "primary": "127.0.0.1:5000",
        "maxWireVersion": 27,
        "ok": 1.0,
    }
    commands, frames = exchange(tr, query("admin.$cmd", {"isMaster": 1}, n=-1), [hello])
    assert commands == [{"isMaster": 1, "$db": "admin"}]
    doc = frames[0].documents[0]  # type: ignore[union-attr]
    assert doc["me"] == doc["primary"] == "127.0.0.1:6000" and doc["hosts"] == ["127.0.0.1:6000"]


def test_invalid_namespace_and_bad_upstream() -> None:
    tr = Translator()
    _, frames = exchange(tr, query("nodot", {}), [])
    assert frames[0].flags & ReplyFlags.QUERY_FAILURE  # type: ignore[union-attr]
    action = tr.client_frame(query("db.c", {}).pack())
    assert action.to_upstream is not None
    with pytest.raises(wire.ProtocolError):
        tr.upstream_frame(OpMsg(1, 424242, {"ok": 1.0}).pack())


def test_client_may_not_send_a_reply() -> None:
    with pytest.raises(wire.ProtocolError):
        Translator().client_frame(wire.reply_bytes(1, 0, []))


def test_sys_inprog_becomes_current_op() -> None:
    commands, frames = exchange(
        Translator(), query("db.$cmd.sys.inprog", {"$all": True}, n=1), [{"inprog": [], "ok": 1.0}]
    )
    assert commands == [{"currentOp": 1, "$all": True, "$db": "admin"}]
    assert frames[0].documents[0]["inprog"] == []  # type: ignore[union-attr]


def test_system_indexes_query_served_from_list_indexes() -> None:
    replies = [
        find_reply([{"name": "a"}, {"name": "b"}], ns="db.$cmd.listCollections"),
        find_reply([{"v": 2, "key": {"_id": 1}, "name": "_id_"}], ns="db.b"),
    ]
    commands, frames = exchange(Translator(), query("db.system.indexes", {"ns": "db.b"}), replies)
    assert [next(iter(c)) for c in commands] == ["listCollections", "listIndexes"]
    assert commands[1]["listIndexes"] == "b"
    assert frames[0].documents == ({"v": 2, "key": {"_id": 1}, "name": "_id_", "ns": "db.b"},)  # type: ignore[union-attr]


def test_system_namespaces_and_legacy_index_insert() -> None:
    tr = Translator()
    replies = [find_reply([{"name": "a"}], ns="db.$cmd.listCollections")]
    _, frames = exchange(tr, query("db.system.namespaces", {}), replies)
    assert frames[0].documents == ({"name": "db.a"},)  # type: ignore[union-attr]
    spec = {"ns": "db.a", "key": {"x": 1}, "name": "x_1"}
    insert = wire.OpInsert(3, 0, "db.system.indexes", wire.InsertFlags(0), (spec,))
    commands, frames = exchange(tr, insert, [{"ok": 1.0}])
    assert commands == [
        {"createIndexes": "a", "indexes": [{"key": {"x": 1}, "name": "x_1"}], "$db": "db"}
    ]
    assert frames == []
