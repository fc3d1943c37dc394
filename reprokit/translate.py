# Legacy opcodes -> OP_MSG commands and back; pure, one Translator per client connection.
#
# Strategy: each client frame starts a small generator (`_handle_*`) that yields
# `Command`s and receives the upstream reply document for each; whatever it
# owes the client it queues as OP_REPLY bytes. `client_frame` / `upstream_frame`
# drive that generator and return an `Action`: bytes for the client, at most
# one OP_MSG frame for upstream, and whether to close. So the asyncio shell only
# moves bytes, and at most one upstream command is ever in flight.
# Invariants: upstream replies are matched by responseTo; cursor ids stay the
# upstream's int64 ids; the cursor -> namespace table is shared by the
# connections of one gateway (a pooled driver may kill a cursor on another
# socket than the one that opened it); the last write's outcome is kept per
# connection for getLastError (3.2+ semantics: n counts inserted documents too).
# Every member address in a hello/isMaster reply is rewritten through
# `address_map`, and maxWireVersion is capped so old drivers stay on the legacy
# protocol this module translates.
from __future__ import annotations

import itertools
import logging
from collections.abc import Generator, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from reprokit import wire
from reprokit.wire import QueryFlags, ReplyFlags

log = logging.getLogger(__name__)

# MongoDB 3.0: legacy finds and getMores, write commands, listCollections/listIndexes.
DEFAULT_MAX_WIRE_VERSION = 3
CURSOR_NOT_FOUND = 43
HELLO_NAMES = frozenset({"hello", "ismaster"})
MEMBER_LISTS = ("hosts", "passives", "arbiters")
MEMBER_FIELDS = ("primary", "me")
WRITE_SEQUENCES = {"insert": "documents", "update": "updates", "delete": "deletes"}
# query-spec modifier -> find command field
MODIFIERS = {
    "$orderby": "sort",
    "orderby": "sort",
    "$hint": "hint",
    "$comment": "comment",
    "$maxTimeMS": "maxTimeMS",
    "$min": "min",
    "$max": "max",
    "$returnKey": "returnKey",
    "$showDiskLoc": "showRecordId",
    "$readPreference": "$readPreference",
}
# Modifiers modern servers removed; dropping them keeps the query's results.
DROPPED_MODIFIERS = frozenset({"$snapshot", "$maxScan"})
FLAG_FIELDS = (
    (QueryFlags.TAILABLE_CURSOR, "tailable"),
    (QueryFlags.AWAIT_DATA, "awaitData"),
    (QueryFlags.NO_CURSOR_TIMEOUT, "noCursorTimeout"),
    (QueryFlags.PARTIAL, "allowPartialResults"),
)
QUERY_REPLY_FLAGS = ReplyFlags.AWAIT_CAPABLE


class UpstreamProtocolError(wire.ProtocolError):
    """The upstream server sent something we cannot pair or parse."""


@dataclass(frozen=True)
class Command:
    """One command for upstream, sent as an OP_MSG with `sequences` as kind-1 sections."""

    db: str
    body: Mapping[str, Any]
    sequences: tuple[tuple[str, tuple[Mapping[str, Any], ...]], ...] = ()


@dataclass(frozen=True)
class Action:
    """What the shell must do next, in this order."""

    to_client: bytes = b""
    to_upstream: bytes | None = None  # send it, read one reply, pass it to upstream_frame
    close: bool = False


@dataclass
class CursorInfo:
    namespace: str
    returned: int = 0


@dataclass(frozen=True)
class LastWrite:
    n: int = 0
    err: str | None = None
    code: int | None = None
    updated_existing: bool | None = None
    upserted: Any = None


@dataclass
class _Emit:
    """Queued client bytes and the requestID of the last reply (for exhaust chaining)."""

    chunks: list[bytes] = field(default_factory=list)
    last_request_id: int = 0


Handler = Generator[Command, Mapping[str, Any], None]


def split_namespace(ns: str) -> tuple[str, str]:
    db, _, coll = ns.partition(".")
    return db, coll


def error_fields(reply: Mapping[str, Any]) -> tuple[str, int]:
    return str(reply.get("errmsg", "unknown error")), int(reply.get("code", 0) or 0)


def rewrite_hello(
    reply: Mapping[str, Any], address_map: Mapping[str, str], max_wire_version: int
) -> dict[str, Any]:
    """Point every member address at the gateway and cap the wire version."""

    def mapped(addr: Any) -> Any:
        if isinstance(addr, str) and addr in address_map:
            return address_map[addr]
        if isinstance(addr, str) and address_map:
            log.warning("hello names member %s that the gateway does not front", addr)
        return addr

    out = dict(reply)
    for key in MEMBER_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [mapped(a) for a in out[key]]
    for key in MEMBER_FIELDS:
        if key in out:
            out[key] = mapped(out[key])
    if isinstance(out.get("maxWireVersion"), int):
        out["maxWireVersion"] = min(out["maxWireVersion"], max_wire_version)
    out.pop("compression", None)  # OP_COMPRESSED is not translated
    return out


def read_batch(reply: Mapping[str, Any], field_name: str) -> wire.CursorBatch:
    """The cursor of a find/getMore reply; a raw reply's documents are never decoded."""
    cursor = reply.get("cursor")
    if isinstance(cursor, RawBSONDocument):
        try:
            return wire.read_cursor(bytes(cursor.raw), field_name)
        except wire.ProtocolError as exc:
            raise UpstreamProtocolError(f"upstream cursor reply: {exc}") from exc
    if not isinstance(cursor, Mapping):
        raise UpstreamProtocolError("upstream reply has no cursor document")
    docs = [wire.encode_document(d) for d in cursor.get(field_name) or ()]
    raw = wire.RawDocs(len(docs), b"".join(docs))
    return wire.CursorBatch(int(cursor.get("id") or 0), str(cursor.get("ns") or ""), raw)


def last_write_from_reply(kind: str, reply: Mapping[str, Any]) -> LastWrite:
    """getLastError's view of a write command's reply."""
    if not reply.get("ok"):
        errmsg, errcode = error_fields(reply)
        return LastWrite(err=errmsg, code=errcode)
    n = int(reply.get("n", 0))
    err: str | None = None
    code: int | None = None
    errors = reply.get("writeErrors") or []
    if errors:
        err, code = str(errors[-1].get("errmsg")), int(errors[-1].get("code", 0))
    elif reply.get("writeConcernError"):
        wce = reply["writeConcernError"]
        err, code = str(wce.get("errmsg")), int(wce.get("code", 0))
    if kind != "update":
        return LastWrite(n=n, err=err, code=code)
    upserted = reply.get("upserted") or []
    upserted_id = upserted[0].get("_id") if upserted else None
    return LastWrite(
        n=n, err=err, code=code, updated_existing=bool(n) and not upserted, upserted=upserted_id
    )


class Translator:
    """Per-connection protocol translator (sans-IO)."""

    def __init__(
        self,
        address_map: Mapping[str, str] | None = None,
        *,
        cursors: MutableMapping[int, CursorInfo] | None = None,
        max_wire_version: int = DEFAULT_MAX_WIRE_VERSION,
        connection_id: int = 0,
        max_frame: int = wire.DEFAULT_MAX_FRAME,
    ) -> None:
        self.address_map = dict(address_map or {})
        self.cursors: MutableMapping[int, CursorInfo] = cursors if cursors is not None else {}
        self.max_wire_version = max_wire_version
        self.connection_id = connection_id
        self.max_frame = max_frame
        self.last_write: LastWrite | None = None
        self._reply_ids = itertools.count(1)
        self._upstream_ids = itertools.count(1)
        self._handler: Handler | None = None
        self._awaiting: int | None = None
        self._emit = _Emit()

    @property
    def busy(self) -> bool:
        return self._handler is not None

    # -- driving -------------------------------------------------------------------

    def client_frame(self, frame: bytes) -> Action:
        """Feed one whole client frame. Raises wire.ProtocolError if the peer broke protocol."""
        if self._handler is not None:
            raise RuntimeError("client frame while an upstream reply is outstanding")
        msg = wire.decode_message(frame, max_size=self.max_frame)
        self._handler = self._dispatch(msg)
        return self._advance(None)

    def upstream_frame(self, frame: bytes) -> Action:
        """Feed the upstream's reply to the command from the last Action."""
        if self._handler is None or self._awaiting is None:
            raise UpstreamProtocolError("upstream sent a frame nobody asked for")
        try:
            msg = wire.decode_message(frame, raw=True, max_size=self.max_frame)
        except wire.ProtocolError as exc:
            raise UpstreamProtocolError(f"bad upstream frame: {exc}") from exc
        if not isinstance(msg, wire.OpMsg) or msg.response_to != self._awaiting:
            raise UpstreamProtocolError(
                f"expected OP_MSG answering {self._awaiting}, got {type(msg).__name__}"
                f" answering {msg.response_to}"
            )
        return self._advance(msg.body)

    def _advance(self, reply: Mapping[str, Any] | None) -> Action:
        assert self._handler is not None
        try:
            command = self._handler.send(reply) if reply is not None else next(self._handler)
        except StopIteration:
            self._handler, self._awaiting = None, None
            return Action(to_client=self._take())
        request_id = next(self._upstream_ids) & 0x7FFFFFFF
        body = dict(command.body)
        body["$db"] = command.db
        frame = wire.OpMsg(request_id, 0, body, command.sequences).pack()
        self._awaiting = request_id
        return Action(to_client=self._take(), to_upstream=frame)

    def _take(self) -> bytes:
        data = b"".join(self._emit.chunks)
        self._emit.chunks.clear()
        return data

    def _reply(
        self,
        response_to: int,
        docs: Iterable[Mapping[str, Any]] | wire.RawDocs,
        *,
        cursor_id: int = 0,
        starting_from: int = 0,
        flags: ReplyFlags = wire.NO_REPLY_FLAGS,
    ) -> None:
        request_id = next(self._reply_ids) & 0x7FFFFFFF
        self._emit.last_request_id = request_id
        frame = wire.reply_bytes(
            request_id,
            response_to,
            docs if isinstance(docs, wire.RawDocs) else list(docs),
            cursor_id=cursor_id,
            starting_from=starting_from,
            flags=flags,
        )
        self._emit.chunks.append(frame)

    def _failure(self, response_to: int, errmsg: str, code: int) -> None:
        doc = {"$err": errmsg, "code": code, "ok": 0.0}
        self._reply(response_to, [doc], flags=ReplyFlags.QUERY_FAILURE | QUERY_REPLY_FLAGS)

    # -- dispatch ------------------------------------------------------------------

    def _dispatch(self, msg: wire.Message) -> Handler:
        if isinstance(msg, wire.OpQuery):
            db, coll = split_namespace(msg.namespace)
            if coll != "$cmd":
                self.last_write = None
            if not db or not coll:
                self._failure(msg.request_id, f"Invalid ns [{msg.namespace}]", 73)
                return _done()
            if coll == "$cmd":
                return self._handle_command(msg, db)
            if coll.startswith("$cmd.sys."):
                return self._handle_sys(msg, db, coll[len("$cmd.sys.") :])
            if coll in ("system.indexes", "system.namespaces"):
                return self._handle_system_collection(msg, db, coll)
            return self._handle_find(msg, db, coll)
        self.last_write = None
        if isinstance(msg, wire.OpGetMore):
            return self._handle_get_more(msg)
        if isinstance(msg, wire.OpKillCursors):
            return self._handle_kill_cursors(msg.cursor_ids)
        if isinstance(msg, (wire.OpInsert, wire.OpUpdate, wire.OpDelete)):
            return self._handle_legacy_write(msg)
        if isinstance(msg, wire.OpMsg):
            return self._handle_op_msg(msg)
        raise wire.ProtocolError(f"a client may not send {type(msg).__name__}")

    # -- commands ------------------------------------------------------------------

    def _handle_command(self, msg: wire.OpQuery, db: str) -> Handler:
        spec: dict[str, Any] = dict(msg.query)
        if isinstance(spec.get("$query"), Mapping):
            wrapper = spec
            spec = dict(wrapper["$query"])
            if "$readPreference" in wrapper:
                spec["$readPreference"] = wrapper["$readPreference"]
        if not spec:
            self._reply(msg.request_id, [{"ok": 0.0, "errmsg": "no command given", "code": 59}])
            return
        name = next(iter(spec))
        lname = name.lower()
        if lname == "getlasterror":
            self._reply(msg.request_id, [self._gle_document()])
            return
        if lname == "getpreverror":
            doc = self._gle_document()
            doc["nPrev"] = 1 if self.last_write is not None else -1
            self._reply(msg.request_id, [doc])
            return
        self.last_write = None
        if lname == "reseterror":
            self._reply(msg.request_id, [{"ok": 1.0}])
            return
        sequences: tuple[tuple[str, tuple[Mapping[str, Any], ...]], ...] = ()
        seq_field = WRITE_SEQUENCES.get(name)
        if seq_field and isinstance(spec.get(seq_field), list):
            sequences = ((seq_field, tuple(spec.pop(seq_field))),)
        if lname == "aggregate" and "cursor" not in spec and not spec.get("explain"):
            yield from self._legacy_aggregate(msg, db, spec)
            return
        reply = yield Command(db, spec, sequences)
        if lname in HELLO_NAMES:
            reply = rewrite_hello(reply, self.address_map, self.max_wire_version)
        elif seq_field:
            self.last_write = last_write_from_reply(name, reply)
        self._remember_command_cursor(reply, db)
        self._reply(msg.request_id, [reply])

    def _legacy_aggregate(self, msg: wire.OpQuery, db: str, spec: dict[str, Any]) -> Handler:
        """Pre-3.6 aggregate answered {result: [...]}; modern servers insist on a cursor."""
        reply = yield Command(db, {**spec, "cursor": {}})
        if not reply.get("ok"):
            self._reply(msg.request_id, [reply])
            return
        result = list(reply["cursor"].get("firstBatch") or ())
        cursor_id = int(reply["cursor"].get("id") or 0)
        coll = str(spec["aggregate"])
        while cursor_id:
            reply = yield Command(db, {"getMore": bson.Int64(cursor_id), "collection": coll})
            if not reply.get("ok"):
                self._reply(msg.request_id, [reply])
                return
            result.extend(reply["cursor"].get("nextBatch") or ())
            cursor_id = int(reply["cursor"].get("id") or 0)
        self._reply(msg.request_id, [{"result": result, "ok": 1.0}])

    def _remember_command_cursor(self, reply: Mapping[str, Any], db: str) -> None:
        cursor = reply.get("cursor") if reply.get("ok") else None
        if isinstance(cursor, Mapping) and int(cursor.get("id") or 0):
            batch = cursor.get("firstBatch") or ()
            ns = str(cursor.get("ns") or f"{db}.$cmd")
            self.cursors[int(cursor["id"])] = CursorInfo(ns, len(batch))

    def _gle_document(self) -> dict[str, Any]:
        last = self.last_write or LastWrite()
        doc: dict[str, Any] = {
            "connectionId": self.connection_id,
            "n": last.n,
            "syncMillis": 0,
            "writtenTo": None,
            "err": last.err,
        }
        if last.code is not None:
            doc["code"] = last.code
        if last.updated_existing is not None:
            doc["updatedExisting"] = last.updated_existing
        if last.upserted is not None:
            doc["upserted"] = last.upserted
        doc["ok"] = 1.0
        return doc

    def _handle_sys(self, msg: wire.OpQuery, db: str, which: str) -> Handler:
        """The pseudo-collections $cmd.sys.inprog / killop / unlock of old servers."""
        query = dict(msg.query.get("$query", msg.query))
        if which == "inprog":
            command: dict[str, Any] = {"currentOp": 1, **query}
        elif which == "killop":
            command = {"killOp": 1, "op": query.get("op")}
        elif which == "unlock":
            command = {"fsyncUnlock": 1}
        else:
            self._failure(msg.request_id, f"unknown pseudo-collection $cmd.sys.{which}", 73)
            return
        reply = yield Command("admin", command)
        self._reply(msg.request_id, [reply])

    def _handle_op_msg(self, msg: wire.OpMsg) -> Handler:
        """Modern clients pass straight through (moreToCome is honoured by not replying)."""
        body = dict(msg.body)
        db = str(body.pop("$db", "admin"))
        reply = yield Command(db, body, msg.sequences)
        if str(next(iter(body), "")).lower() in HELLO_NAMES:
            reply = rewrite_hello(reply, self.address_map, self.max_wire_version)
        if msg.flags & wire.MsgFlags.MORE_TO_COME:
            return
        request_id = next(self._reply_ids) & 0x7FFFFFFF
        self._emit.chunks.append(wire.OpMsg(request_id, msg.request_id, reply).pack())

    # -- queries and cursors -------------------------------------------------------

    def _drain(self, db: str, command: dict[str, Any]) -> Generator[Command, Any, list[Any]]:
        """Run a cursor-returning command and collect every batch; raise _Failed on error."""
        reply = yield Command(db, command)
        if not reply.get("ok"):
            raise _Failed(*error_fields(reply))
        docs = list(reply["cursor"].get("firstBatch") or ())
        cursor_id = int(reply["cursor"].get("id") or 0)
        coll = split_namespace(str(reply["cursor"].get("ns") or ""))[1]
        while cursor_id:
            reply = yield Command(db, {"getMore": bson.Int64(cursor_id), "collection": coll})
            if not reply.get("ok"):
                raise _Failed(*error_fields(reply))
            docs.extend(reply["cursor"].get("nextBatch") or ())
            cursor_id = int(reply["cursor"].get("id") or 0)
        return docs

    def _handle_system_collection(self, msg: wire.OpQuery, db: str, coll: str) -> Handler:
        """Pre-3.0 drivers read db.system.indexes / db.system.namespaces; serve them from
        listIndexes / listCollections (one batch, equality filters on top-level fields)."""
        query = msg.query.get("$query", msg.query)
        query = dict(query) if isinstance(query, Mapping) else {}
        try:
            collections = yield from self._drain(db, {"listCollections": 1, "nameOnly": True})
            names = sorted(str(c["name"]) for c in collections)
            docs: list[dict[str, Any]] = []
            if coll == "system.namespaces":
                docs = [{"name": f"{db}.{name}"} for name in names]
            else:
                wanted = query.get("ns")
                for name in names:
                    if isinstance(wanted, str) and wanted != f"{db}.{name}":
                        continue
                    indexes = yield from self._drain(db, {"listIndexes": name})
                    docs += [{**dict(ix), "ns": f"{db}.{name}"} for ix in indexes]
        except _Failed as exc:
            self._failure(msg.request_id, exc.errmsg, exc.code)
            return
        docs = [d for d in docs if all(d.get(k) == v for k, v in query.items())]
        if msg.limit:
            docs = docs[: abs(msg.limit)]
        self._reply(msg.request_id, docs[max(0, msg.skip) :], flags=QUERY_REPLY_FLAGS)

    def _handle_find(self, msg: wire.OpQuery, db: str, coll: str) -> Handler:
        query = msg.query
        wrapped = query.get("$query", query.get("query"))
        modifiers: Mapping[str, Any] = {}
        if isinstance(wrapped, Mapping):
            modifiers, query = query, wrapped
        find: dict[str, Any] = {"find": coll, "filter": dict(query)}
        explain = False
        for key, value in modifiers.items():
            if key in MODIFIERS:
                find[MODIFIERS[key]] = value
            elif key == "$explain":
                explain = bool(value)
            elif key in DROPPED_MODIFIERS:
                log.debug("dropping query modifier %s (removed from modern servers)", key)
        if not find.get("sort"):
            find.pop("sort", None)
        if msg.fields:
            find["projection"] = dict(msg.fields)
        if msg.skip:
            find["skip"] = msg.skip
        n = msg.limit
        if n < 0 or n == 1:
            find["limit"] = abs(n)
            find["singleBatch"] = True
        elif n > 1:
            find["batchSize"] = n
        for flag, name in FLAG_FIELDS:
            if msg.flags & flag:
                find[name] = True
        if explain:
            find.pop("$readPreference", None)
            reply = yield Command(db, {"explain": find, "verbosity": "allPlansExecution"})
            if not reply.get("ok"):
                self._failure(msg.request_id, *error_fields(reply))
            else:
                self._reply(msg.request_id, [reply], flags=QUERY_REPLY_FLAGS)
            return
        reply = yield Command(db, find)
        if not reply.get("ok"):
            self._failure(msg.request_id, *error_fields(reply))
            return
        batch = read_batch(reply, "firstBatch")
        cursor_id = batch.cursor_id
        if cursor_id:
            ns = batch.namespace or msg.namespace
            self.cursors[cursor_id] = CursorInfo(ns, batch.documents.count)
        self._reply(msg.request_id, batch.documents, cursor_id=cursor_id, flags=QUERY_REPLY_FLAGS)
        if msg.flags & QueryFlags.EXHAUST:
            yield from self._stream_exhaust(cursor_id, msg.namespace)

    def _stream_exhaust(self, cursor_id: int, namespace: str) -> Handler:
        """Legacy exhaust: push every remaining batch without waiting for OP_GET_MORE."""
        db, coll = split_namespace(namespace)
        while cursor_id:
            info = self.cursors.get(cursor_id) or CursorInfo(namespace)
            get_more = {"getMore": bson.Int64(cursor_id), "collection": coll}
            reply = yield Command(db, get_more)
            previous = self._emit.last_request_id
            if not reply.get("ok"):
                self.cursors.pop(cursor_id, None)
                self._failure(previous, *error_fields(reply))
                return
            batch = read_batch(reply, "nextBatch")
            start = info.returned
            count = batch.documents.count
            cursor_id = self._advance_cursor(cursor_id, batch.cursor_id, info, count)
            self._reply(
                previous,
                batch.documents,
                cursor_id=cursor_id,
                starting_from=start,
                flags=QUERY_REPLY_FLAGS,
            )

    def _advance_cursor(self, old_id: int, new_id: int, info: CursorInfo, count: int) -> int:
        info.returned += count
        if new_id:
            self.cursors[new_id] = info
        else:
            self.cursors.pop(old_id, None)
        return new_id

    def _handle_get_more(self, msg: wire.OpGetMore) -> Handler:
        db, coll = split_namespace(msg.namespace)
        info = self.cursors.get(msg.cursor_id) or CursorInfo(msg.namespace)
        command: dict[str, Any] = {"getMore": bson.Int64(msg.cursor_id), "collection": coll}
        if msg.limit:
            command["batchSize"] = abs(msg.limit)
        if not msg.cursor_id or not db or not coll:
            self._reply(msg.request_id, [], flags=ReplyFlags.CURSOR_NOT_FOUND)
            return
        reply = yield Command(db, command)
        if not reply.get("ok"):
            errmsg, code = error_fields(reply)
            self.cursors.pop(msg.cursor_id, None)
            if code == CURSOR_NOT_FOUND:
                self._reply(msg.request_id, [], flags=ReplyFlags.CURSOR_NOT_FOUND)
            else:
                self._failure(msg.request_id, errmsg, code)
            return
        batch = read_batch(reply, "nextBatch")
        start = info.returned
        count = batch.documents.count
        new_id = self._advance_cursor(msg.cursor_id, batch.cursor_id, info, count)
        if new_id and msg.limit < 0:  # negative numberToReturn: this batch is the last
            yield from self._kill(msg.namespace, [new_id])
            new_id = 0
        self._reply(
            msg.request_id,
            batch.documents,
            cursor_id=new_id,
            starting_from=start,
            flags=QUERY_REPLY_FLAGS,
        )

    def _handle_kill_cursors(self, cursor_ids: Iterable[int]) -> Handler:
        by_ns: dict[str, list[int]] = {}
        for cursor_id in cursor_ids:
            info = self.cursors.get(cursor_id)
            if info is None:
                log.debug("OP_KILL_CURSORS names unknown cursor %d; skipped", cursor_id)
                continue
            by_ns.setdefault(info.namespace, []).append(cursor_id)
        for ns, ids in by_ns.items():
            yield from self._kill(ns, ids)

    def _kill(self, namespace: str, ids: list[int]) -> Handler:
        db, coll = split_namespace(namespace)
        for cursor_id in ids:
            self.cursors.pop(cursor_id, None)
        yield Command(db, {"killCursors": coll, "cursors": [bson.Int64(i) for i in ids]})

    # -- unacknowledged writes -----------------------------------------------------

    def _handle_legacy_write(self, msg: wire.OpInsert | wire.OpUpdate | wire.OpDelete) -> Handler:
        db, coll = split_namespace(msg.namespace)
        if not db or not coll:
            self.last_write = LastWrite(err=f"Invalid ns [{msg.namespace}]", code=73)
            return
        body: dict[str, Any]
        sequence: tuple[Mapping[str, Any], ...]
        if isinstance(msg, wire.OpInsert) and coll == "system.indexes":
            yield from self._legacy_index_insert(db, msg.documents)
            return
        if isinstance(msg, wire.OpInsert):
            kind, ordered = "insert", not msg.flags & wire.InsertFlags.CONTINUE_ON_ERROR
            sequence = msg.documents
        elif isinstance(msg, wire.OpUpdate):
            kind, ordered = "update", True
            sequence = (
                {
                    "q": msg.selector,
                    "u": msg.update,
                    "upsert": bool(msg.flags & wire.UpdateFlags.UPSERT),
                    "multi": bool(msg.flags & wire.UpdateFlags.MULTI_UPDATE),
                },
            )
        else:
            kind, ordered = "delete", True
            single = bool(msg.flags & wire.DeleteFlags.SINGLE_REMOVE)
            sequence = ({"q": msg.selector, "limit": 1 if single else 0},)
        body = {kind: coll, "ordered": ordered, "writeConcern": {"w": 1}}
        reply = yield Command(db, body, ((WRITE_SEQUENCES[kind], sequence),))
        self.last_write = last_write_from_reply(kind, reply)

    def _legacy_index_insert(self, db: str, specs: Iterable[Mapping[str, Any]]) -> Handler:
        """Inserting into db.system.indexes was how pre-2.6 drivers created indexes."""
        for spec in specs:
            index = {k: v for k, v in spec.items() if k != "ns"}
            coll = split_namespace(str(spec.get("ns", "")))[1]
            reply = yield Command(db, {"createIndexes": coll, "indexes": [index]})
            if not reply.get("ok"):
                errmsg, code = error_fields(reply)
                self.last_write = LastWrite(err=errmsg, code=code)
                return
        self.last_write = LastWrite()


class _Failed(Exception):
    def __init__(self, errmsg: str, code: int) -> None:
        super().__init__(errmsg)
        self.errmsg, self.code = errmsg, code


def _done() -> Handler:
    return
    yield  # pragma: no cover - makes this a generator
