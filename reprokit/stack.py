# The server stack a scenario runs against: `python -m reprokit serve --json`
# as a child process (SecantusDB plus the legacy gateway, or the gateway in
# front of MONGODB_URI). A separate process keeps the server's threads and GIL
# away from the watchdog's timing, and makes cleanup a process-group kill.
# Readiness is the one JSON line the child prints, awaited with a deadline.
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit import procs
from reprokit.errors import ServerError
from reprokit.redact import redact_uri

READY_TIMEOUT = 60.0


@dataclass
class Stack:
    uri: str  # what the app connects to (legacy-capable)
    upstream: str  # the server itself, for pymongo 4
    server: dict[str, Any]
    gateway: bool
    proc: subprocess.Popen[Any] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def stop(self) -> None:
        if self.proc is not None:
            procs.shutdown(self.proc, interrupt_timeout=5.0, terminate_timeout=3.0)
            self.proc = None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return redact_uri("\n".join(text.strip().splitlines()[-lines:]))


def start_stack(
    workdir: Path, upstream: str | None = None, timeout: float = READY_TIMEOUT
) -> Stack:
    """Start the server stack; return once it printed its ready line.

    With `upstream` (MONGODB_URI), the server is probed first: a replica set
    that still answers legacy queries is used directly, anything newer gets
    the gateway in front.
    """
    facts = None
    if upstream:
        from reprokit.probe import probe_server

        facts = probe_server(upstream)
        if facts.legacy_queries:
            return Stack(
                uri=upstream,
                upstream=upstream,
                server={"name": "MongoDB", "version": facts.version, "external": True},
                gateway=False,
            )
    log_path = workdir / "server.log"
    argv = [sys.executable, "-m", "reprokit", "serve", "--json"]
    if upstream:
        argv += ["--upstream", upstream]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # The server's storage goes under the run's directory, so it is removed
    # with it even if the stack had to be killed.
    env["TMPDIR"] = str(workdir)
    with open(log_path, "wb") as log:
        proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        line = _read_line(proc, timeout)
        if line is None:
            code = proc.poll()
            what = (
                f"exited with status {code}"
                if code is not None
                else f"was not ready in {timeout:.0f}s"
            )
            tail = _tail(log_path)
            raise ServerError(
                f"the server stack {what}" + (f":\n{tail}" if tail else ""),
                tip="run `python -m reprokit serve` by hand to see the whole log",
            )
        try:
            info = json.loads(line)
        except ValueError:
            raise ServerError(
                f"the server stack printed an unexpected line: {line[:200]!r}"
            ) from None
        server = dict(info.get("server", {}))
        if facts is not None:
            server = {"name": "MongoDB", "version": facts.version, "external": True}
        return Stack(
            uri=info["uri"],
            upstream=upstream or info["upstream"],
            server=server,
            gateway=bool(info.get("gateway", True)),
            proc=proc,
            log_path=log_path,
        )
    except BaseException:
        procs.shutdown(proc, interrupt_timeout=2.0)
        raise


def _read_line(proc: subprocess.Popen[Any], timeout: float) -> str | None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=min(0.2, max(0.0, deadline - time.monotonic()))):
                if proc.poll() is not None:
                    return None
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            buffer += chunk
            if b"\n" in buffer:
                return buffer.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return None
