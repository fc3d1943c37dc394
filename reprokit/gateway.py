# The asyncio shell around wire.py and translate.py: it only moves bytes.
#
# Strategy: `Gateway.start()` asks the seed server who the members are (one
# OP_MSG hello), opens one listening socket per member and builds the address
# map the translators use to rewrite hello replies. Each client connection gets
# its own upstream connection to the same member and one task (`_serve`) that
# runs the Translator; two pump tasks turn each socket into frames on a shared
# event queue, so a hang-up on either side is seen at once and closes both.
# Invariants: every wait has a timeout (idle client, half-sent frame, upstream
# answer, connect, drain); a protocol error closes only its own connection, with
# the reason logged; `close()` stops listening and ends every connection.
from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from reprokit import wire
from reprokit.errors import ServerError
from reprokit.translate import DEFAULT_MAX_WIRE_VERSION, CursorInfo, Translator

log = logging.getLogger(__name__)

CHUNK = 1 << 16
_CLIENT, _UPSTREAM = "client", "upstream"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    idle: float = 600.0  # a client that says nothing for this long is dropped
    frame: float = 30.0  # a frame once started must arrive completely within this
    upstream: float = 300.0  # an upstream answer must come within this
    drain: float = 30.0
    shutdown: float = 5.0


@dataclass(frozen=True)
class Member:
    upstream: tuple[str, int]
    listen: tuple[str, int]

    @property
    def address(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def _hello(address: tuple[str, int], timeouts: Timeouts) -> dict[str, Any]:
    """One OP_MSG hello against `address`."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeouts.connect)
    try:
        writer.write(wire.OpMsg(1, 0, {"hello": 1, "$db": "admin"}).pack())
        await asyncio.wait_for(writer.drain(), timeouts.drain)
        head = await asyncio.wait_for(reader.readexactly(wire.HEADER_SIZE), timeouts.upstream)
        header = wire.parse_header(head)
        rest = await asyncio.wait_for(
            reader.readexactly(header.length - wire.HEADER_SIZE), timeouts.upstream
        )
        msg = wire.decode_message(head + rest)
        if not isinstance(msg, wire.OpMsg):
            raise wire.ProtocolError(f"hello answered with {type(msg).__name__}")
        return dict(msg.body)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeouts.shutdown)


class Gateway:
    """Legacy-protocol front for one server or replica set."""

    def __init__(
        self,
        seed: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        timeouts: Timeouts = Timeouts(),
        max_wire_version: int = DEFAULT_MAX_WIRE_VERSION,
    ) -> None:
        self.seed = seed
        self.listen_host = listen_host
        self.timeouts = timeouts
        self.max_wire_version = max_wire_version
        self.members: list[Member] = []
        self.replica_set: str | None = None
        self.address_map: dict[str, str] = {}
        self.cursors: dict[int, CursorInfo] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    @property
    def connections(self) -> int:
        return len(self._tasks)

    def uri(self) -> str:
        hosts = ",".join(m.address for m in self.members)
        query = f"?replicaSet={self.replica_set}" if self.replica_set else ""
        return f"mongodb://{hosts}/{query}"

    async def start(self) -> None:
        """Discover the members and listen for each; raises ServerError if the seed is unusable."""
        try:
            hello = await _hello(self.seed, self.timeouts)
        except (OSError, TimeoutError, wire.ProtocolError, asyncio.IncompleteReadError) as exc:
            raise ServerError(
                f"the gateway could not ask {self.seed[0]}:{self.seed[1]} for its members: {exc}",
                tip="check that the upstream server is running and speaks OP_MSG",
            ) from exc
        self.replica_set = hello.get("setName")
        upstreams: dict[str, tuple[str, int]] = {}
        if self.replica_set:
            me = hello.get("me")
            for key in ("hosts", "passives", "arbiters"):
                for addr in hello.get(key) or []:
                    upstreams[addr] = self.seed if addr == me else parse_address(addr)
        if not upstreams:
            upstreams[f"{self.seed[0]}:{self.seed[1]}"] = self.seed
        for advertised, target in upstreams.items():
            server = await asyncio.start_server(
                functools.partial(self._accept, target=target), self.listen_host, 0
            )
            self._servers.append(server)
            sockname = server.sockets[0].getsockname()
            member = Member(target, (self.listen_host, int(sockname[1])))
            self.members.append(member)
            self.address_map[advertised] = member.address
        log.info("gateway: %s", ", ".join(f"{m.address} -> {m.upstream}" for m in self.members))

    async def close(self) -> None:
        """Stop listening and end every connection (each within the shutdown timeout)."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeouts.shutdown)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), self.timeouts.shutdown)
        self._servers.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection -------------------------------------------------------------

    def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        target: tuple[str, int],
    ) -> None:
        conn_id = next(self._ids)
        peer = client_writer.get_extra_info("peername")
        up_writer: asyncio.StreamWriter | None = None
        pumps: list[asyncio.Task[None]] = []
        reason = "closed"
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(*target), self.timeouts.connect
            )
            up_writer = upstream
            events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            room = asyncio.Semaphore(32)  # client frames read ahead of the translator
            pumps = [
                asyncio.create_task(self._pump(_CLIENT, client_reader, events, room)),
                asyncio.create_task(self._pump(_UPSTREAM, up_reader, events, None)),
            ]
            translator = Translator(
                self.address_map,
                cursors=self.cursors,
                max_wire_version=self.max_wire_version,
                connection_id=conn_id,
            )
            reason = await self._run(translator, events, room, client_writer, upstream)
        except asyncio.CancelledError:
            reason = "gateway shutting down"
            raise
        except (OSError, TimeoutError) as exc:
            reason = f"upstream {target[0]}:{target[1]} unreachable: {exc!r}"
        except Exception:
            log.exception("gateway connection %d from %s failed", conn_id, peer)
            reason = "internal error"
        finally:
            log.info("gateway connection %d from %s closed: %s", conn_id, peer, reason)
            for task in pumps:
                task.cancel()
            for writer in (client_writer, up_writer):
                if writer is not None:
                    writer.close()
            for writer in (client_writer, up_writer):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.wait_closed(), self.timeouts.shutdown)

    async def _run(
        self,
        translator: Translator,
        events: asyncio.Queue[tuple[str, Any]],
        room: asyncio.Semaphore,
        client_writer: asyncio.StreamWriter,
        up_writer: asyncio.StreamWriter,
    ) -> str:
        """Feed frames through the translator until one side ends; return why."""
        pending: deque[bytes] = deque()
        awaiting = False
        client_broke: str | None = None  # answered once the frames before it are
        while True:
            if not awaiting and not pending and client_broke:
                return client_broke
            if not awaiting and pending:
                room.release()
                try:
                    action = translator.client_frame(pending.popleft())
                except wire.ProtocolError as exc:
                    return f"client broke the protocol: {exc}"
                awaiting = await self._apply(action, client_writer, up_writer)
                if action.close:
                    return "translator asked to close"
                continue
            wait = self.timeouts.upstream if awaiting else self.timeouts.idle
            try:
                side, item = await asyncio.wait_for(events.get(), wait)
            except TimeoutError:
                return "upstream did not answer in time" if awaiting else "client idle too long"
            if item is None:
                return f"{side} hung up"
            if isinstance(item, BaseException):
                if side == _CLIENT:
                    client_broke = f"client broke the protocol: {item}"
                    continue
                return f"{side} failed: {item}"
            if side == _CLIENT:
                pending.append(item)
                continue
            if not awaiting:
                return "upstream sent an unsolicited frame"
            try:
                action = translator.upstream_frame(item)
            except wire.ProtocolError as exc:
                return f"upstream broke the protocol: {exc}"
            awaiting = await self._apply(action, client_writer, up_writer)

    async def _apply(
        self, action: Any, client_writer: asyncio.StreamWriter, up_writer: asyncio.StreamWriter
    ) -> bool:
        if action.to_client:
            client_writer.write(action.to_client)
            await asyncio.wait_for(client_writer.drain(), self.timeouts.drain)
        if action.to_upstream is None:
            return False
        up_writer.write(action.to_upstream)
        await asyncio.wait_for(up_writer.drain(), self.timeouts.drain)
        return True

    async def _pump(
        self,
        side: str,
        reader: asyncio.StreamReader,
        events: asyncio.Queue[tuple[str, Any]],
        room: asyncio.Semaphore | None,
    ) -> None:
        """Read one socket, post each whole frame; post None at EOF or the error that ended it."""
        splitter = wire.FrameSplitter()
        try:
            while True:
                timeout = self.timeouts.frame if splitter.buffered else None
                data = await asyncio.wait_for(reader.read(CHUNK), timeout)
                if not data:
                    if splitter.buffered:
                        raise wire.Truncated(f"hung up {splitter.buffered} bytes into a frame")
                    events.put_nowait((side, None))
                    return
                splitter.feed(data)
                while (frame := splitter.next_frame()) is not None:
                    if room is not None:
                        await room.acquire()
                    events.put_nowait((side, frame))
        except TimeoutError:
            events.put_nowait((side, wire.Truncated("frame not completed in time")))
        except (wire.ProtocolError, OSError) as exc:
            events.put_nowait((side, exc))
