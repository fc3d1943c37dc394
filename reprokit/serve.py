# `reprokit serve`: SecantusDB (or --upstream URI) with the legacy gateway in front.
#
# Strategy: the embedded server runs on its own threads in this process, the
# gateway on the asyncio loop in the main thread. Readiness is announced once,
# on stdout, after both listen (human text, or the one JSON line DESIGN.md
# specifies with --json). SIGINT/SIGTERM set an event; shutdown then closes the
# gateway (every connection), stops the server and removes its temp storage,
# and the command returns 0. Heavy imports stay inside `run`.
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from reprokit.errors import ServerError

DEFAULT_STARTUP_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--upstream",
        metavar="URI",
        help="front an existing server (mongodb://host:port/) instead of starting SecantusDB",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON 'ready' line instead of text"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the gateway listens on")
    parser.add_argument(
        "--max-wire-version",
        type=int,
        default=None,
        help="wire version advertised to clients (default 3, MongoDB 3.0: legacy protocol)",
    )


def parse_upstream(uri: str) -> tuple[str, int]:
    """First host of a mongodb:// URI (credentials and options are not used)."""
    if not uri.startswith("mongodb://"):
        raise ServerError(f"--upstream must be a mongodb:// URI, got {uri!r}")
    rest = uri[len("mongodb://") :].split("/", 1)[0].split("?", 1)[0]
    hostport = rest.rsplit("@", 1)[-1].split(",")[0]
    if not hostport:
        raise ServerError(f"--upstream URI names no host: {uri!r}")
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return hostport, 27017
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise ServerError(f"--upstream URI has a bad port: {uri!r}") from exc


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import logging
    import shutil
    import signal
    import tempfile

    from reprokit.gateway import Gateway
    from reprokit.translate import DEFAULT_MAX_WIRE_VERSION

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: Any = None
    storage: str | None = None
    gateway: Gateway | None = None
    try:
        info = {"name": "unknown", "version": "unknown"}
        if args.upstream:
            upstream_uri = args.upstream
            seed = parse_upstream(args.upstream)
        else:
            from importlib.metadata import version

            from secantus import SecantusDBServer

            storage = tempfile.mkdtemp(prefix="reprokit-secantus-")
            server = SecantusDBServer("127.0.0.1", 0, storage_path=storage)
            await asyncio.wait_for(asyncio.to_thread(server.start), DEFAULT_STARTUP_TIMEOUT)
            seed = server.address
            upstream_uri = server.uri
            info = {"name": "SecantusDB", "version": version("secantusdb")}
        max_wire = args.max_wire_version or DEFAULT_MAX_WIRE_VERSION
        gateway = Gateway(seed, listen_host=args.host, max_wire_version=max_wire)
        await gateway.start()
        ready = {
            "event": "ready",
            "uri": gateway.uri(),
            "upstream": upstream_uri,
            "replica_set": gateway.replica_set,
            "server": info,
            "gateway": True,
            "pid": os.getpid(),
        }
        if args.json:
            print(json.dumps(ready), flush=True)
        else:
            print(f"legacy drivers (pymongo 2.x/3.x, Motor 0.x): {ready['uri']}", flush=True)
            print(f"modern drivers, directly:                  {upstream_uri}", flush=True)
            print("press Ctrl-C to stop", flush=True)
        await stop.wait()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if gateway is not None:
            await gateway.close()
        if server is not None:
            # SecantusDB 0.7.0b3 logs a traceback ("Storage is closed") when it
            # persists oplog metadata after its own storage closed; the data is
            # a temp dir removed below, so that message is noise at this point.
            logging.getLogger("secantus.storage").setLevel(logging.CRITICAL)
            await asyncio.to_thread(server.stop)
        if storage is not None:
            shutil.rmtree(storage, ignore_errors=True)
        sys.stdout.flush()
