"""`python -m reprokit serve`: the ready line, a working stack, clean exit on signals."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from reprokit import wire
from reprokit.errors import ServerError
from reprokit.serve import parse_upstream

ROOT = Path(__file__).resolve().parents[1]


def _spawn(args: list[str], tmpdir: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "reprokit", "serve", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "serve printed nothing in time"
    return proc.stdout.readline()


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def tmpdir_() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reprokit-serve-test-") as path:
        yield Path(path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_json_ready_line_and_clean_exit(tmpdir_: Path, sig: int) -> None:
    proc = _spawn(["--json"], tmpdir_)
    try:
        ready = json.loads(_read_line(proc))
        assert set(ready) == {"event", "uri", "upstream", "replica_set", "server", "gateway", "pid"}
        assert ready["event"] == "ready" and ready["gateway"] is True
        assert ready["pid"] == proc.pid and ready["replica_set"] == "secantus"
        assert ready["server"]["name"] == "SecantusDB"
        assert ready["uri"].endswith("/?replicaSet=secantus")
        assert list(tmpdir_.iterdir()), "storage should live in TMPDIR while serving"
        with pymongo.MongoClient(ready["upstream"], directConnection=True) as client:
            assert client.admin.command("ping")["ok"] == 1.0
        # the gateway answers a legacy OP_QUERY command
        host, port = ready["uri"][len("mongodb://") :].split("/")[0].split(":")
        import socket

        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                wire.OpQuery(1, 0, wire.QueryFlags(0), "admin.$cmd", 0, -1, {"isMaster": 1}).pack()
            )
            splitter = wire.FrameSplitter()
            while (frame := splitter.next_frame()) is None:
                splitter.feed(sock.recv(65536))
            reply = wire.decode_message(frame)
            assert isinstance(reply, wire.OpReply)
            assert reply.documents[0]["me"] == f"{host}:{port}"
    finally:
        code = _stop(proc, sig)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert proc.stdout is not None and proc.stdout.read() == ""
    assert not list(tmpdir_.iterdir()), "temp storage must be removed on exit"


def test_serve_upstream_fronts_an_existing_server(tmpdir_: Path) -> None:
    first = _spawn(["--json"], tmpdir_)
    second = None
    try:
        upstream = json.loads(_read_line(first))["upstream"]
        second = _spawn(["--json", "--upstream", upstream], tmpdir_)
        ready = json.loads(_read_line(second))
        assert ready["upstream"] == upstream and ready["replica_set"] == "secantus"
        assert ready["uri"] != upstream
    finally:
        codes = [_stop(p) for p in (second, first) if p is not None]
    assert codes == [0, 0]


def test_serve_text_mode_prints_the_uri(tmpdir_: Path) -> None:
    proc = _spawn([], tmpdir_)
    try:
        line = _read_line(proc)
        assert "mongodb://127.0.0.1:" in line and "replicaSet=secantus" in line
    finally:
        assert _stop(proc, signal.SIGINT) == 0


def test_serve_unreachable_upstream_fails_with_a_message(tmpdir_: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _spawn(["--upstream", f"mongodb://127.0.0.1:{port}/"], tmpdir_)
    try:
        code = proc.wait(30)
    finally:
        _stop(proc)
    assert code == 2
    assert proc.stderr is not None and "could not ask" in proc.stderr.read()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://h:1/", ("h", 1)),
        ("mongodb://u:p@h:2/db?replicaSet=x", ("h", 2)),
        ("mongodb://a:3,b:4/", ("a", 3)),
        ("mongodb://h", ("h", 27017)),
        ("mongodb://[::1]:5/", ("::1", 5)),
    ],
)
def test_parse_upstream(uri: str, expected: tuple[str, int]) -> None:
    assert parse_upstream(uri) == expected


@pytest.mark.parametrize("uri", ["http://h:1", "mongodb:///", "mongodb://h:x/"])
def test_parse_upstream_rejects(uri: str) -> None:
    with pytest.raises(ServerError):
        parse_upstream(uri)
