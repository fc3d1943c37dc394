"""The gateway end to end: real pymongo 2.8 on Python 2.7, through the gateway, to SecantusDB.

Also raw-socket tests of hostile input against the live gateway. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import bson
import pymongo
import pytest

from reprokit import wire
from reprokit.gateway import Gateway, Timeouts

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@dataclass
class LiveStack:
    server: Any
    gateway: Gateway
    loop: asyncio.AbstractEventLoop

    @property
    def uri(self) -> str:
        return self.gateway.uri()

    @property
    def address(self) -> tuple[str, int]:
        return self.gateway.members[0].listen

    @property
    def upstream_uri(self) -> str:
        return str(self.server.uri)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    """SecantusDB on a free loopback port with the gateway in front, on a background loop."""
    from secantus import SecantusDBServer

    storage = tempfile.mkdtemp(prefix="reprokit-gw-test-")
    server = SecantusDBServer("127.0.0.1", 0, storage_path=storage)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    gateway: Gateway | None = None
    try:
        server.start()
        thread.start()
        gateway = Gateway(server.address, timeouts=Timeouts(frame=2.0, idle=60.0))
        asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(30)
        yield LiveStack(server, gateway, loop)
    finally:
        if thread.is_alive():
            if gateway is not None:
                asyncio.run_coroutine_threadsafe(gateway.close(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        loop.close()
        server.stop()
        shutil.rmtree(storage, ignore_errors=True)


@pytest.fixture(scope="session")
def py27_pymongo28() -> Path:
    """A cached Python 2.7 virtualenv with pymongo 2.8 (built once, reused)."""
    from reprokit.envs import EnvSpec, ensure_env

    env = ensure_env(
        EnvSpec("gateway-pymongo-2.8", "2.7", ("pymongo==2.8",)), ROOT / "_build" / "envs"
    )
    assert env.packages.get("pymongo") == "2.8"
    return env.python


def run_legacy(python: Path, body: str, uri: str, timeout: float = 120) -> dict[str, Any]:
    """Run a Python 2.7 snippet that fills `out`; return `out` decoded from its JSON line."""
    script = "import json, sys\nuri = sys.argv[1]\nout = {}\n" + textwrap.dedent(body)
    script += "\nprint('RESULT ' + json.dumps(out, default=repr))\n"
    proc = subprocess.run(
        [str(python), "-c", script, uri],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line[len("RESULT ") :]))


def direct(stack: LiveStack) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(stack.upstream_uri, directConnection=True)


# -- real pymongo 2.8 on Python 2.7 -----------------------------------------------------


@pytest.mark.slow
def test_pymongo28_cursors_through_the_gateway(stack: LiveStack, py27_pymongo28: Path) -> None:
    with direct(stack) as client:
        client.gw.docs.drop()
        client.gw.docs.insert_many([{"_id": i, "x": i % 7} for i in range(150)])
    out = run_legacy(
        py27_pymongo28,
        """
        from pymongo import MongoClient
        c = MongoClient(uri)
        coll = c.gw.docs
        out["all"] = [d["_id"] for d in coll.find()]
        out["sorted"] = [d["_id"] for d in coll.find().sort([("x", -1), ("_id", 1)])]
        out["skip_limit"] = [d["_id"] for d in coll.find().sort("_id", 1).skip(140).limit(5)]
        out["batches"] = [d["_id"] for d in coll.find().batch_size(7)]
        out["one"] = coll.find_one({"_id": 42})
        out["neg_limit"] = [d["_id"] for d in coll.find().limit(-3)]
        out["projection"] = list(coll.find({"_id": 3}, {"x": 1, "_id": 0}))
        cur = coll.find().batch_size(10)
        next(cur)
        out["early_id"] = cur.cursor_id
        cur.close()
        out["count"] = coll.count()
        out["count_q"] = coll.find({"x": 3}).count()
        """,
        stack.uri,
    )
    assert out["all"] == list(range(150))
    with direct(stack) as client:
        expected = [d["_id"] for d in client.gw.docs.find().sort([("x", -1), ("_id", 1)])]
        # the cursor closed early was killed upstream, not just forgotten
        with pytest.raises(pymongo.errors.OperationFailure) as err:
            client.gw.command({"getMore": bson.Int64(out["early_id"]), "collection": "docs"})
        assert err.value.code == 43
    assert out["sorted"] == expected
    assert out["skip_limit"] == [140, 141, 142, 143, 144]
    assert out["batches"] == list(range(150))
    assert out["one"] == {"_id": 42, "x": 0}
    assert out["neg_limit"] == [0, 1, 2]
    assert out["projection"] == [{"x": 3}]
    assert out["early_id"] not in stack.gateway.cursors
    assert out["count"] == 150 and out["count_q"] == 21


@pytest.mark.slow
def test_pymongo28_writes_and_get_last_error(stack: LiveStack, py27_pymongo28: Path) -> None:
    with direct(stack) as client:
        client.gw.w.drop()
    out = run_legacy(
        py27_pymongo28,
        """
        from pymongo import MongoClient
        from pymongo.errors import DuplicateKeyError
        c = MongoClient(uri)
        coll = c.gw.w
        out["ids"] = coll.insert([{"_id": i, "v": i} for i in range(20)])
        try:
            coll.insert({"_id": 1})
        except DuplicateKeyError as e:
            out["dup"] = e.code
        out["upd"] = coll.update({"v": {"$lt": 5}}, {"$inc": {"v": 100}}, multi=True)
        out["rm"] = coll.remove({"_id": 19})
        # unacknowledged writes (OP_INSERT / OP_UPDATE / OP_DELETE) and getLastError
        # on the same socket
        c2 = MongoClient(uri, max_pool_size=1)
        db = c2.gw
        db.w.insert({"_id": 1000}, w=0)
        out["gle_insert"] = db.command("getlasterror")
        db.w.insert({"_id": 1000}, w=0)
        out["gle_dup"] = db.command("getlasterror")
        db.w.update({"_id": 1000}, {"$set": {"a": 1}}, w=0)
        out["gle_update"] = db.command("getlasterror")
        db.w.update({"_id": 2000}, {"$set": {"a": 1}}, upsert=True, w=0)
        out["gle_upsert"] = db.command("getlasterror")
        db.w.remove({"v": {"$gte": 100}}, w=0, multi=False)
        out["gle_remove_one"] = db.command("getlasterror")
        db.w.insert([{"_id": 1000}, {"_id": 3000}], w=0, continue_on_error=True)
        out["gle_coe"] = db.command("getlasterror")
        out["count"] = db.w.count()
        """,
        stack.uri,
    )
    assert out["ids"] == list(range(20))
    assert out["dup"] == 11000
    assert out["upd"]["n"] == 5 and out["upd"]["updatedExisting"] is True
    assert out["rm"]["n"] == 1
    assert out["gle_insert"]["err"] is None and out["gle_insert"]["n"] == 1
    assert out["gle_dup"]["code"] == 11000 and "duplicate key" in out["gle_dup"]["err"]
    assert out["gle_update"]["n"] == 1 and out["gle_update"]["updatedExisting"] is True
    assert out["gle_upsert"]["upserted"] == 2000 and out["gle_upsert"]["updatedExisting"] is False
    assert out["gle_remove_one"]["n"] == 1
    assert out["gle_coe"]["code"] == 11000
    with direct(stack) as client:
        assert client.gw.w.find_one({"_id": 3000}) == {"_id": 3000}
        assert client.gw.w.count_documents({}) == out["count"] == 19 + 1 + 1 - 1 + 1


@pytest.mark.slow
def test_pymongo28_replica_set_client_stays_on_the_gateway(
    stack: LiveStack, py27_pymongo28: Path
) -> None:
    out = run_legacy(
        py27_pymongo28,
        """
        from pymongo import MongoReplicaSetClient
        c = MongoReplicaSetClient(uri, replicaSet="secantus")
        out["primary"] = "%s:%d" % c.primary
        out["hosts"] = sorted("%s:%d" % h for h in c.hosts)
        out["wire"] = c.max_wire_version
        c.gw.rs.drop()
        c.gw.rs.insert({"_id": 1})
        out["doc"] = c.gw.rs.find_one()
        out["names"] = c.gw.collection_names()
        out["agg"] = c.gw.rs.aggregate([{"$match": {}}])["result"]
        out["fam"] = c.gw.rs.find_and_modify({"_id": 1}, {"$set": {"y": 2}}, new=True)
        c.gw.rs.create_index("y")
        out["indexes"] = sorted(c.gw.rs.index_information())
        out["distinct"] = c.gw.rs.distinct("y")
        """,
        stack.uri,
    )
    gateway_address = stack.gateway.members[0].address
    assert out["primary"] == gateway_address
    assert out["hosts"] == [gateway_address]
    assert out["wire"] == 3
    assert out["doc"] == {"_id": 1}
    assert "rs" in out["names"]
    assert out["agg"] == [{"_id": 1}]
    assert out["fam"] == {"_id": 1, "y": 2}
    assert out["indexes"] == ["_id_", "y_1"]
    assert out["distinct"] == [2]


# -- the live gateway under hostile input (raw sockets) ------------------------------


def _connect(stack: LiveStack) -> socket.socket:
    sock = socket.create_connection(stack.address, timeout=10)
    return sock


def _recv_frame(sock: socket.socket) -> wire.Message:
    splitter = wire.FrameSplitter()
    while (frame := splitter.next_frame()) is None:
        chunk = sock.recv(65536)
        assert chunk, "gateway closed the connection"
        splitter.feed(chunk)
    return wire.decode_message(frame)


def _is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _ping(sock: socket.socket, request_id: int = 1) -> wire.OpReply:
    sock.sendall(
        wire.OpQuery(request_id, 0, wire.QueryFlags(0), "admin.$cmd", 0, -1, {"ping": 1}).pack()
    )
    reply = _recv_frame(sock)
    assert isinstance(reply, wire.OpReply) and reply.response_to == request_id
    return reply


HOSTILE = [
    ("huge length", struct.pack("<iiii", 2**31 - 1, 1, 0, 2004)),
    ("negative length", struct.pack("<iiii", -1, 1, 0, 2004)),
    ("unknown opcode", struct.pack("<iiii", 20, 1, 0, 4242) + b"\x00" * 4),
    ("op_compressed", struct.pack("<iiii", 25, 1, 0, 2012) + struct.pack("<iiB", 2004, 0, 0)),
    (
        "invalid bson",
        struct.pack("<iiii", 40, 1, 0, 2004)
        + b"\x00" * 4
        + b"a.b\x00"
        + b"\x00" * 8
        + b"\x0c\x00\x00\x00\xee"
        + b"\x00" * 7,
    ),
    ("unterminated name", struct.pack("<iiii", 24, 1, 0, 2004) + b"\x00" * 4 + b"abcd"),
    ("a client sending OP_REPLY", wire.reply_bytes(1, 0, [{"a": 1}])),
]


@pytest.mark.parametrize(("name", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_frame_closes_only_its_connection(
    stack: LiveStack, name: str, data: bytes
) -> None:
    bystander = _connect(stack)
    victim = _connect(stack)
    try:
        _ping(bystander)
        victim.sendall(data)
        assert _is_closed(victim)
        assert _ping(bystander, 2).documents[0]["ok"] == 1.0
    finally:
        victim.close()
        bystander.close()


def test_garbage_after_a_valid_frame(stack: LiveStack) -> None:
    sock = _connect(stack)
    try:
        ping = wire.OpQuery(9, 0, wire.QueryFlags(0), "admin.$cmd", 0, -1, {"ping": 1}).pack()
        sock.sendall(ping + b"\xff" * 40)
        reply = _recv_frame(sock)
        assert isinstance(reply, wire.OpReply) and reply.documents[0]["ok"] == 1.0
        assert _is_closed(sock)
    finally:
        sock.close()


def test_half_sent_frame_times_out(stack: LiveStack) -> None:
    sock = _connect(stack)
    try:
        frame = wire.OpQuery(3, 0, wire.QueryFlags(0), "admin.$cmd", 0, -1, {"ping": 1}).pack()
        sock.sendall(frame[:10])
        sock.settimeout(stack.gateway.timeouts.frame + 5)
        assert _is_closed(sock)
    finally:
        sock.close()


def test_unknown_cursor_gets_cursor_not_found(stack: LiveStack) -> None:
    sock = _connect(stack)
    try:
        sock.sendall(wire.OpGetMore(4, 0, "gw.none", 0, 123456789).pack())
        reply = _recv_frame(sock)
        assert isinstance(reply, wire.OpReply)
        assert reply.flags & wire.ReplyFlags.CURSOR_NOT_FOUND and reply.cursor_id == 0
    finally:
        sock.close()


def test_op_msg_hello_passes_through_rewritten(stack: LiveStack) -> None:
    sock = _connect(stack)
    try:
        sock.sendall(wire.OpMsg(5, 0, {"hello": 1, "$db": "admin"}).pack())
        reply = _recv_frame(sock)
        assert isinstance(reply, wire.OpMsg) and reply.response_to == 5
        hello = reply.body
        address = stack.gateway.members[0].address
        assert hello["me"] == hello["primary"] == address
        assert hello["hosts"] == [address]
        assert hello["maxWireVersion"] == 3
    finally:
        sock.close()


def test_upstream_closing_closes_the_client(stack: LiveStack) -> None:
    sock = _connect(stack)
    try:
        _ping(sock)
        assert stack.gateway.connections >= 1
        # end this connection's upstream side from the server: killOp-free way is to
        # shut down every gateway connection's upstream socket via the server registry
        stack.server.connections.close_all()
        sock.settimeout(10)
        assert _is_closed(sock)
    finally:
        sock.close()
