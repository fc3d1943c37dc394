"""code/app.py under the real interpreter and pins of each variant in code/matrix.toml.

Python 2.7 with Motor 0.4 / 0.4.1, PyMongo 2.8, Tornado 4.1 from PyPI; a real
SecantusDB behind the legacy gateway (`reprokit serve`). Nothing is mocked.
The environments are the ones `make repro` uses (same cache, same key), so the
first run builds them and later runs reuse them.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import py_compile
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reprokit import procs
from reprokit.envs import EnvSpec, ensure_env
from reprokit.matrix import load_matrix
from reprokit.stack import Stack, start_stack

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT / "code"
APP = CODE / "app.py"
LISTENING_RE = re.compile(r"^Listening on http://127\.0\.0\.1:(\d+)/\n$")
RS_CLIENT = "pymongo/mongo_replica_set_client.py"


def _python_for(variant_name: str) -> Path:
    matrix = load_matrix(CODE / "matrix.toml")
    (variant,) = [v for v in matrix.variants if v.name == variant_name]
    spec = EnvSpec(variant.name, variant.python, variant.requirements)
    return ensure_env(spec, ROOT / "_build" / "envs").python


@pytest.fixture(scope="module")
def py_motor04() -> Path:
    return _python_for("motor-0.4")


@pytest.fixture(scope="module")
def py_motor041() -> Path:
    return _python_for("motor-0.4.1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """SecantusDB plus the legacy gateway, in a child process group."""
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.stop()


@dataclass
class App:
    proc: subprocess.Popen[Any]
    port: int
    stdout: Path
    stderr: Path
    trace: Path
    trigger: Path

    def stdout_text(self) -> str:
        return self.stdout.read_text()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "STACKTRACER_"))}
    env.update(extra)
    return env


def _spawn(python: Path, workdir: Path, env: dict[str, str]) -> subprocess.Popen[Any]:
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        return procs.spawn(
            [python, APP, "--port", "0"], cwd=workdir, env=env, stdout=stdout, stderr=stderr
        )


@pytest.fixture
def run_app(tmp_path: Path) -> Iterator[Any]:
    """Start app.py and wait for its Listening line; every app is killed at teardown."""
    started: list[subprocess.Popen[Any]] = []

    def start(python: Path, uri: str | None = None, timeout: float = 30) -> App:
        trace, trigger = tmp_path / "trace.html", tmp_path / "dump-now"
        env = _clean_env(STACKTRACER_PATH=str(trace), STACKTRACER_TRIGGER=str(trigger))
        if uri is not None:
            env["MONGODB_URI"] = uri
        proc = _spawn(python, tmp_path, env)
        started.append(proc)
        app = App(proc, 0, tmp_path / "stdout.txt", tmp_path / "stderr.txt", trace, trigger)
        deadline = time.monotonic() + timeout
        while not app.stdout_text().endswith("\n"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"app did not start:\n{app.stderr.read_text()[-3000:]}")
            time.sleep(0.02)
        match = LISTENING_RE.match(app.stdout_text())
        assert match, app.stdout_text()
        app.port = int(match.group(1))
        return app

    try:
        yield start
    finally:
        for proc in started:
            procs.shutdown(proc, interrupt_timeout=0, terminate_timeout=2)


def _get(port: int, path: str, timeout: float = 20) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def _trigger_dump(app: App, content: str) -> dict[str, Any]:
    staged = app.trigger.with_name("staging")
    staged.write_text(content)
    os.rename(staged, app.trigger)  # atomically: the tracer never reads half a file
    deadline = time.monotonic() + 5
    while app.trigger.exists():
        assert time.monotonic() < deadline, "the tracer did not consume the trigger in 5s"
        time.sleep(0.01)
    snap: dict[str, Any] = json.loads(app.trace.with_suffix(".json").read_text())
    assert snap["reason"] == "trigger" and snap["trigger"] == content
    return snap


def _visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _where(frame: dict[str, Any]) -> tuple[str, int, str, str]:
    short = frame["file"].split("site-packages/")[-1]
    return short, frame["line"], frame["function"], frame["source"]


def _isolated_app(tmp_path: Path) -> Path:
    """A copy of code/ in tmp_path, so a developer's own code/credentials.json
    (ignored by git) cannot change what the app finds."""
    for name in ("app.py", "stacktracer.py"):
        shutil.copy(CODE / name, tmp_path / name)
    return tmp_path / "app.py"


def test_app_source_compiles_on_this_python(tmp_path: Path) -> None:
    # Motor 0.4.x cannot be installed on Python 3 here (its sdist needs
    # distribute_setup), so on Python 3 the app is only compiled.
    for name in ("app.py", "stacktracer.py"):
        py_compile.compile(str(CODE / name), cfile=str(tmp_path / (name + "c")), doraise=True)


@pytest.mark.slow
def test_refuses_to_start_without_a_uri(py_motor04: Path, tmp_path: Path) -> None:
    app = _isolated_app(tmp_path)
    proc = subprocess.run(
        [py_motor04, app, "--port", "0"],
        cwd=tmp_path,
        env=_clean_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("app.py: no MongoDB URI: set MONGODB_URI or write")
    assert "credentials.json" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("content", ['{"mongodb_uri": ', '["mongodb://x/"]'])
def test_refuses_a_broken_credentials_file(py_motor04: Path, tmp_path: Path, content: str) -> None:
    app = _isolated_app(tmp_path)
    (tmp_path / "credentials.json").write_text(content)
    proc = subprocess.run(
        [py_motor04, app],
        cwd=tmp_path,
        env=_clean_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("app.py: credentials.json is not usable: ")


@pytest.mark.slow
def test_starts_with_credentials_json_and_connects_lazily(
    py_motor04: Path, run_app: Any, tmp_path: Path
) -> None:
    # Nothing listens on this port: startup must not touch the server.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    uri = f"mongodb://127.0.0.1:{dead_port}/?replicaSet=secantus"
    (tmp_path / "credentials.json").write_text(json.dumps({"mongodb_uri": uri}))
    app = run_app(py_motor04)
    assert _get(app.port, "/no-such-route")[0] == 404
    status, _, body = _get(app.port, "/doinsert?batches=0")  # a route that needs no server
    assert (status, body) == (200, "inserted 0")
    assert _get(app.port, "/doinsert?batches=many")[0] == 400
    deadline = time.monotonic() + 10
    while not app.trace.with_suffix(".json").exists():
        assert time.monotonic() < deadline, "the tracer wrote nothing"
        time.sleep(0.02)
    snap = _trigger_dump(app, "startup check")
    (main,) = [t for t in snap["threads"] if t["main"]]
    assert any(f["function"] == "start" and "ioloop" in f["file"] for f in main["frames"])
    assert snap["greenlets"] == []  # no operation has run yet
    log = app.stderr.read_text()
    assert "404 GET /no-such-route" in log
    assert "start GET /doinsert?batches=0" in log and "200 GET /doinsert?batches=0" in log
    assert LISTENING_RE.match(app.stdout_text())  # still exactly one line


@pytest.mark.slow
def test_motor_04_deadlocks_with_the_documented_stacks(
    py_motor04: Path, stack: Stack, run_app: Any
) -> None:
    app = run_app(py_motor04, uri=stack.uri)
    clients = []
    try:
        for _ in range(4):  # four concurrent requests to a fresh process
            client = socket.create_connection(("127.0.0.1", app.port), timeout=5)
            client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            clients.append(client)
        time.sleep(2.0)
        for client in clients:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(1)  # no answer, and the connection is still open
        assert app.proc.poll() is None

        snap = _trigger_dump(app, "deadlock check")
    finally:
        for client in clients:
            client.close()
    main = snap["threads"][0]
    assert main["name"] == "MainThread" and main["main"]
    assert [_where(f) for f in main["frames"][-2:]] == [
        (RS_CLIENT, 1318, "_ensure_connected", "self.__ensure_monitor()"),
        (RS_CLIENT, 1087, "__ensure_monitor", "self.__monitor_lock.acquire()"),
    ]
    holders = [
        g
        for g in snap["greenlets"]
        if [_where(f)[2] for f in g["frames"][-3:]] == ["__ensure_monitor", "start_sync", "wait"]
    ]
    assert len(holders) == 1, [g["frames"][-3:] for g in snap["greenlets"]]
    assert [_where(f) for f in holders[0]["frames"][-3:]] == [
        (RS_CLIENT, 1095, "__ensure_monitor", "monitor.start_sync()"),
        (RS_CLIENT, 321, "start_sync", "self.started_event.wait(5)"),
        ("motor/util.py", 74, "wait", "parent.switch()"),
    ]
    text = _visible_text(app.trace.read_text())
    assert "self.__monitor_lock.acquire()" in text and "(suspended)" in text
    # The first request alone hangs the process (its two finds are enough).
    assert app.stderr.read_text().count("start GET /") >= 1
    assert "200 GET /" not in app.stderr.read_text()


@pytest.mark.slow
def test_motor_041_answers_concurrent_requests_and_inserts(
    py_motor041: Path, stack: Stack, run_app: Any
) -> None:
    app = run_app(py_motor041, uri=stack.uri)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _get(app.port, "/"), range(4)))
    assert [(status, body) for status, _, body in answers] == [(200, "done")] * 4
    counts = {headers["X-Doc-Counts"] for _, headers, _ in answers}
    assert len(counts) == 1
    before = [int(n) for n in counts.pop().split(",")]

    status, _, body = _get(app.port, "/doinsert?batches=2&size=50")
    assert (status, body) == (200, "inserted 200")
    status, headers, body = _get(app.port, "/")
    assert (status, body) == (200, "done")
    assert headers["X-Doc-Counts"] == f"{before[0] + 100},{before[1] + 100}"

    snap = _trigger_dump(app, "idle check")
    (main,) = [t for t in snap["threads"] if t["main"]]
    # Idle in the IOLoop: epoll's poll is C, so the innermost Python frame is its caller.
    assert _where(main["frames"][-1])[2:] == (
        "start",
        "event_pairs = self._impl.poll(poll_timeout)",
    )
    assert app.proc.poll() is None
