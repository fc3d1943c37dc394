# What an external server (MONGODB_URI) can do, asked before a run uses it.
#
# Two questions: is it a replica set (MotorReplicaSetClient needs one), and
# does it still answer legacy OP_QUERY on a collection? Servers before 6.0
# do; mongod 6.0+ and SecantusDB do not, and then the run puts the legacy
# gateway in front. The legacy question is asked with one raw OP_QUERY frame
# built by the gateway's own codec, so no old driver is needed here.
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from reprokit.errors import ServerError
from reprokit.redact import redact_uri

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServerFacts:
    set_name: str | None
    hosts: tuple[str, ...]
    version: str
    legacy_queries: bool


def first_host(uri: str) -> tuple[str, int]:
    """The first host:port of a mongodb:// URI, credentials and options dropped."""
    if not uri.startswith("mongodb://"):
        raise ServerError(
            f"MONGODB_URI must be a mongodb:// URI, got {redact_uri(uri)!r}",
            tip="e.g. MONGODB_URI='mongodb://127.0.0.1:27017/?replicaSet=rs0'",
        )
    hosts = uri[len("mongodb://") :].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host = hosts.split(",")[0]
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest.lstrip(":") or 27017)
    name, sep, port = host.rpartition(":")
    if not sep:
        return host, 27017
    if not port.isdigit():
        raise ServerError(
            f"MONGODB_URI {redact_uri(uri)} has a port that is not a number: {port!r}",
            tip="e.g. MONGODB_URI='mongodb://127.0.0.1:27017/?replicaSet=rs0'",
        )
    return name, int(port)


def legacy_query_works(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a legacy OP_QUERY on a collection gets a real (even empty) result."""
    from reprokit import wire

    query = wire.OpQuery(
        request_id=1, response_to=0, flags=wire.QueryFlags(0),
        namespace="reprokit_probe.probe", skip=0, limit=-1, query={}, fields=None,
    )  # fmt: skip
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(query.pack())
        splitter = wire.FrameSplitter()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            splitter.feed(chunk)
            frame = splitter.next_frame()
            if frame is not None:
                break
    reply = wire.decode_message(frame)
    if not isinstance(reply, wire.OpReply):
        return False
    if reply.flags & wire.ReplyFlags.QUERY_FAILURE:
        return False
    # A server that treats the query as a command answers with {ok: 0, ...}.
    return not any(isinstance(d, dict) and "ok" in d and "errmsg" in d for d in reply.documents)


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT) -> ServerFacts:
    """Ask the server at `uri`; ServerError with a tip if it is unreachable or unfit."""
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

    shown = redact_uri(uri)
    host, port = first_host(uri)
    try:
        # The URI itself, so its credentials and options are checked too; one
        # member, directly, so a replica-set name mismatch is not a timeout.
        client: Any = MongoClient(
            uri, directConnection=True, serverSelectionTimeoutMS=int(timeout * 1000)
        )
    except (ConfigurationError, ValueError) as exc:
        raise ServerError(
            f"MONGODB_URI {shown} is not a valid MongoDB URI: {redact_uri(str(exc))}",
            tip="percent-encode special characters in the user name and password",
        ) from None
    try:
        client.admin.command("ping")
    except OperationFailure as exc:
        client.close()
        raise ServerError(
            f"MONGODB_URI {shown} was refused: {redact_uri(str(exc.details.get('errmsg', exc)) if exc.details else str(exc))}",
            tip="check the user name, password and authSource in the URI",
        ) from None
    except PyMongoError:
        pass  # reported below, with the reachability message
    try:
        hello = client.admin.command("hello")
        version = str(client.admin.command("buildInfo").get("version", "?"))
    except PyMongoError as exc:
        raise ServerError(
            f"MONGODB_URI {shown} is not reachable: {type(exc).__name__}: "
            + redact_uri(str(exc)).split(" (configured")[0].splitlines()[0][:200],
            tip="start the server, or unset MONGODB_URI to use the embedded SecantusDB",
        ) from None
    finally:
        client.close()
    set_name = hello.get("setName")
    if not set_name:
        raise ServerError(
            f"MONGODB_URI {shown} is not a replica set: the reproduction opens a "
            "MotorReplicaSetClient, which needs one",
            tip="start mongod with --replSet rs0 and run rs.initiate() once",
        )
    try:
        legacy = legacy_query_works(host, port, timeout)
    except OSError as exc:
        raise ServerError(f"MONGODB_URI {shown}: the legacy probe failed: {exc}") from None
    return ServerFacts(
        set_name=str(set_name),
        hosts=tuple(hello.get("hosts", ())),
        version=version,
        legacy_queries=legacy,
    )
