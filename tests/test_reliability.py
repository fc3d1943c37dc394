"""The reliability tier: interrupted runs, dying servers, failing installs,
taken ports, bad input and hostile captured content, all with real runs.

Every repro started here inherits a unique token in its environment and a
private TMPDIR, so the test can find any process it left behind (and only
those) and see every temporary directory it forgot.
"""

from __future__ import annotations

import html.parser
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "code" / "matrix.toml"
HOSTILE = ROOT / "tests" / "scenarios" / "hostile" / "matrix.toml"
CACHE = ROOT / "_build" / "envs"
EVIDENCE = ROOT / "posts" / "evidence" / "motor-66"


class Run:
    """One `reprokit` CLI process with a token and a private TMPDIR."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.token = f"reprokit-test-{uuid.uuid4().hex}"
        self.tmpdir = tmp / "run-tmp"
        self.tmpdir.mkdir()
        env = {**os.environ, "REPROKIT_TEST_TOKEN": self.token, "TMPDIR": str(self.tmpdir)}
        env.pop("MONGODB_URI", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reprokit", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.stderr = ""
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, marker: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(marker in line for line in self.lines):
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"never saw {marker!r}:\n{''.join(self.lines)}"
                )
                self._seen.wait(min(left, 0.5))

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    def survivors(self) -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.proc.pid:
                continue
            try:
                if self.token.encode() in (entry / "environ").read_bytes():
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        return found

    def assert_clean(self) -> None:
        # Give the kernel a moment to reap what was just killed.
        deadline = time.monotonic() + 5
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.survivors() == []
        assert list(self.tmpdir.iterdir()) == []


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def matrix_copy(tmp: Path, edit: Callable[[str], str] = lambda t: t) -> Path:
    """The project's matrix, runnable from tmp, after `edit`."""
    text = MATRIX.read_text()
    text = text.replace('app = "app.py"', f'app = "{ROOT / "code" / "app.py"}"')
    text = text.replace(
        'code = ["app.py", "stacktracer.py", "matrix.toml"]', 'code = ["matrix.toml"]'
    )
    path = tmp / "code" / "matrix.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edit(text))
    return path


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A copy of the committed evidence, to check that failures leave it alone."""
    target = tmp_path / "evidence"
    shutil.copytree(EVIDENCE, target)
    return target


# -- interruptions ---------------------------------------------------------------------

INTERRUPTIONS = [
    ("env: creating virtualenv", signal.SIGINT, True),
    ("starting the server stack", signal.SIGTERM, False),
    ("app ready", signal.SIGINT, False),
    ("stall after", signal.SIGTERM, False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("marker", "sig", "cold"), INTERRUPTIONS, ids=lambda v: str(v))
def test_an_interrupted_run_leaves_nothing_behind(
    tmp_path: Path, evidence: Path, marker: str, sig: signal.Signals, cold: bool
) -> None:
    before = snapshot(evidence)
    cache = tmp_path / "cold-cache" if cold else CACHE
    run = Run(tmp_path, "repro", "--cache", str(cache), "--evidence", str(evidence),
              "--variants", "motor-0.4")  # fmt: skip
    run.wait_for(marker)
    run.proc.send_signal(sig)
    code = run.finish(timeout=60)
    assert code == 128 + sig, run.stdout + run.stderr  # 130 for SIGINT, 143 for SIGTERM
    assert "interrupted" in run.stderr
    run.assert_clean()
    assert snapshot(evidence) == before
    if cold:
        # The half-built environment is gone; only the lock and pip cache stay.
        leftovers = [p.name for p in cache.iterdir() if p.name not in (".locks", "pip-cache")]
        assert leftovers == []


@pytest.mark.slow
def test_a_server_that_dies_mid_run_is_an_error_and_keeps_the_evidence(
    tmp_path: Path, evidence: Path
) -> None:
    before = snapshot(evidence)
    run = Run(tmp_path, "repro", "--cache", str(CACHE), "--evidence", str(evidence),
              "--variants", "motor-0.4.1")  # fmt: skip
    run.wait_for("starting the app")
    servers = [c for c in run.survivors() if "reprokit serve" in c]
    assert servers, run.stdout
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (
                    run.token.encode() in (entry / "environ").read_bytes()
                    and b"reprokit\0serve\0" in (entry / "cmdline").read_bytes()
                ):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
    code = run.finish()
    assert code == 1
    assert "motor-0.4.1: expected ok, saw error" in run.stderr
    assert "previous evidence was kept" in run.stderr
    run.assert_clean()
    assert snapshot(evidence) == before


# -- bad input -------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unsatisfiable_pin_names_the_pin(tmp_path: Path, evidence: Path) -> None:
    matrix = matrix_copy(
        tmp_path, lambda t: t.replace('"motor==0.4", "pymongo', '"motor==0.0.99", "pymongo')
    )
    cache = tmp_path / "cache"
    run = Run(tmp_path, "repro", "--matrix", str(matrix), "--cache", str(cache),
              "--evidence", str(evidence), "--variants", "motor-0.4")  # fmt: skip
    assert run.finish(timeout=300) == 1
    assert "no release matches the pin 'motor==0.0.99' for Python 2.7" in run.stderr
    assert "pip index versions" in run.stderr
    assert [p.name for p in cache.iterdir() if p.name not in (".locks", "pip-cache")] == []
    run.assert_clean()


def test_a_missing_interpreter_says_how_to_install_it(tmp_path: Path, evidence: Path) -> None:
    # Only motor-0.4 asks for 2.5; motor-0.4.1 could run, but must not.
    matrix = matrix_copy(tmp_path, lambda t: t.replace('python = "2.7"', 'python = "2.5"', 1))
    before = snapshot(evidence)
    run = Run(tmp_path, "repro", "--matrix", str(matrix), "--evidence", str(evidence))
    # Checked before any variant runs: nothing ran, nothing was stored.
    assert run.finish() == 2
    assert "error: no Python 2.5 interpreter found on PATH or under `pyenv root`" in run.stderr
    assert "env" not in run.stdout
    assert "pyenv install 2.5" in run.stderr
    assert snapshot(evidence) == before
    run.assert_clean()


@pytest.mark.slow
def test_a_taken_port_is_an_error_with_the_apps_own_words(tmp_path: Path, evidence: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        matrix = matrix_copy(
            tmp_path, lambda t: t.replace('args = ["--port", "0"]', f'args = ["--port", "{port}"]')
        )
        run = Run(tmp_path, "repro", "--matrix", str(matrix), "--cache", str(CACHE),
                  "--evidence", str(evidence), "--variants", "motor-0.4.1")  # fmt: skip
        assert run.finish() == 1
    assert "expected ok, saw error: the app did not start" in run.stderr
    assert "Address already in use" in run.stderr
    run.assert_clean()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("stall = 1.0", "stall = "), "not valid TOML"),
        (lambda t: t.replace("stall = 1.0", "stal = 1.0"), ": [scenario]: unknown key 'stal'"),
    ],
)
def test_a_broken_matrix_is_one_located_message(tmp_path: Path, edit, message) -> None:  # type: ignore[no-untyped-def]
    matrix = matrix_copy(tmp_path, edit)
    run = Run(tmp_path, "repro", "--matrix", str(matrix))
    assert run.finish() == 2
    (line,) = [l for l in run.stderr.splitlines() if l.startswith("error:")]
    assert str(matrix) in line and message in line
    assert "Traceback" not in run.stderr


def test_an_unknown_variant_lists_the_known_ones(tmp_path: Path) -> None:
    run = Run(tmp_path, "repro", "--variants", "motor-9")
    assert run.finish() == 2
    assert "no variant named 'motor-9'; the matrix has motor-0.4, motor-0.4.1" in run.stderr


def test_an_unreachable_mongodb_uri_is_one_message_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        env = {
            **os.environ,
            "MONGODB_URI": f"mongodb://admin:hunter2@127.0.0.1:{port}/?replicaSet=rs",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "reprokit", "repro", "--variants", "motor-0.4"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 2
    assert "is not reachable" in proc.stderr and "mongodb://***@127.0.0.1" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


# -- hostile content -------------------------------------------------------------------


class _Audit(html.parser.HTMLParser):
    """Collects what would be active in a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag in ("iframe", "object", "embed"):
            self.problems.append(f"<{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(" in data:
            self.problems.append(f"script: {data[:60]!r}")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


@pytest.mark.slow
def test_hostile_captured_content_never_reaches_the_site(tmp_path: Path) -> None:
    evidence = tmp_path / "site" / "evidence"
    run = Run(tmp_path, "repro", "--matrix", str(HOSTILE), "--cache", str(CACHE),
              "--evidence", str(evidence))  # fmt: skip
    assert run.finish(timeout=300) == 0, run.stdout + run.stderr
    run.assert_clean()
    for path in evidence.rglob("*"):
        if path.is_file():
            assert "hunter2" not in path.read_text(), path
    site = tmp_path / "site"
    (site / "conf.py").write_text(
        f"extensions = ['reprokit.sphinxext']\nreprokit_project_root = {str(ROOT)!r}\n"
    )
    (site / "index.rst").write_text(
        "Hostile\n=======\n\n.. repro-trace:: evidence/hostile-py3\n\n"
        ".. repro-variants:: evidence\n\n.. repro-timeline:: evidence/hostile-py3\n"
    )
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", str(site), str(site / "_build")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    page = (site / "_build" / "index.html").read_text()
    # The trace is there, its hostile line shown as inert, escaped text.
    assert "repro-trace" in page and "&lt;script&gt;alert" in page
    for path in (site / "_build").rglob("*"):
        if path.suffix in (".html", ".svg", ".js", ".json", ".txt") and path.is_file():
            text = path.read_text(errors="replace")
            assert "hunter2" not in text, path
            if path.suffix == ".html":
                audit = _Audit()
                audit.feed(text)
                assert audit.problems == [], (path, audit.problems)
