"""code/stacktracer.py: in this process (Python 3.11, fast) and in real child interpreters.

The fast tier imports the tracer into the test process and checks the dump
format, escaping, atomic writes, the trigger, the modes and stop. The slow tier
runs the same tracer under Python 2.7 (greenlet 1.1.3.post0, Pygments 2.5.2)
and Python 3.11 (greenlet 3.5.6): a main thread blocked on a lock while a
greenlet holding it is suspended, exactly the shape of the MOTOR-66 hang.
Nothing is mocked; the "no Pygments" case runs a child in which importing
Pygments fails, as it would where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reprokit import procs
from reprokit.envs import EnvSpec, ensure_env

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT / "code"
TRACER_ENVS = {
    "2.7": ("greenlet==1.1.3.post0", "pygments==2.5.2"),
    "3.11": ("greenlet==3.5.6", "pygments==2.21.0"),
}
SEQUENCE_RE = re.compile(r'^<div class="stacktracer" data-sequence="(\d+)"')


@pytest.fixture(scope="module")
def st() -> Iterator[ModuleType]:
    """A private copy of code/stacktracer.py imported into this process."""
    spec = importlib.util.spec_from_file_location("stacktracer_under_test", CODE / "stacktracer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.trace_stop()


def _tracer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "stacktracer"]


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _html_sequence(html: str) -> int:
    match = SEQUENCE_RE.match(html)
    assert match, html[:200]
    return int(match.group(1))


# -- fast tier: the tracer inside this process --------------------------------------------


def test_thread_blocked_on_lock_shows_the_acquire_line(st: ModuleType, tmp_path: Path) -> None:
    lock = threading.Lock()
    lock.acquire()

    def blocked_worker() -> None:
        lock.acquire()  # WORKER-BLOCKED-HERE
        lock.release()

    worker = threading.Thread(target=blocked_worker, name="blocked-worker")
    worker.start()
    try:
        time.sleep(0.2)
        snap = st.dump(str(tmp_path / "trace.html"))
    finally:
        lock.release()
        worker.join(5)
    (record,) = [t for t in snap["threads"] if t["name"] == "blocked-worker"]
    assert record["kind"] == "thread" and not record["main"] and not record["tracer"]
    innermost = record["frames"][-1]
    assert innermost["function"] == "blocked_worker"
    assert innermost["source"] == "lock.acquire()  # WORKER-BLOCKED-HERE"
    assert innermost["file"] == __file__
    # Outermost first: the thread's bootstrap comes before the target function.
    assert record["frames"][0]["function"] == "_bootstrap"
    # The dumping thread shows its call site, not the tracer's own frames.
    (me,) = [t for t in snap["threads"] if t["ident"] == threading.get_ident()]
    assert me["main"] and me["frames"][-1]["source"].startswith("snap = st.dump(")
    assert snap["threads"][0] is me  # the main thread comes first
    on_disk = json.loads((tmp_path / "trace.json").read_text())
    assert on_disk == json.loads(json.dumps(snap))
    assert on_disk["format"] == "reprokit.stacks/1" and on_disk["reason"] == "manual"
    assert on_disk["greenlets"] == []  # greenlet is not imported in this process
    html = (tmp_path / "trace.html").read_text()
    assert "Thread blocked-worker" in html and "WORKER-BLOCKED-HERE" in html
    assert _html_sequence(html) == on_disk["sequence"]


def test_html_escapes_program_text_and_styles_inline(st: ModuleType, tmp_path: Path) -> None:
    done = threading.Event()

    def sleeper() -> None:
        done.wait(10)

    thread = threading.Thread(target=sleeper, name="<script>alert('name')</script>")
    thread.start()
    try:
        # The source line of this call holds the markup the HTML must escape.
        snap = st.dump(str(tmp_path / "t.html")) if "<script>alert(1)</script>" else {}
    finally:
        done.set()
        thread.join(5)
    sources = [f["source"] for t in snap["threads"] for f in t["frames"]]
    assert any("<script>alert(1)</script>" in s for s in sources)  # JSON keeps the raw text
    html = (tmp_path / "t.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert "alert(&#39;name&#39;)" in html  # the thread name, escaped by us
    # Pygments with noclasses=True: every styled span carries its style inline.
    spans = re.findall(r"<span\b[^>]*>", html)
    assert spans and all('style="' in s for s in spans if s != "<span>")
    assert "<span class=" not in html
    assert "<style" not in html.lower()
    assert 'style="background: #f8f8f8"' in html


def test_without_pygments_falls_back_to_escaped_pre(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pygments"] = None  # importing Pygments now fails, as if not installed
        sys.path.insert(0, sys.argv[1])
        import stacktracer
        assert stacktracer.highlight is None
        x = "<b>&</b>"; stacktracer.dump(sys.argv[2])
        """
    )
    out, path = tmp_path / "plain.html", tmp_path / "no_pygments.py"
    path.write_text(script)
    subprocess.run([sys.executable, path, CODE, out], check=True, timeout=60)
    html = out.read_text()
    assert '<pre style="background: #f8f8f8; color: #000000; line-height: 125%">' in html
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html and "<b>" not in html
    assert "<span" not in html


def test_concurrent_reader_never_sees_partial_or_mismatched_files(
    st: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "trace.html"
    dumps = 150

    def writer() -> None:
        for _ in range(dumps):
            st.dump(str(path), reason="manual")

    st.dump(str(path))
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        samples = _poll_pairs(path, lambda: thread.is_alive())
    finally:
        thread.join(60)
    _check_samples(samples, min_matched=5)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in {"trace.html", "trace.json"}]
    assert leftovers == []  # no temp file left behind


def _poll_pairs(path: Path, writing: Any) -> list[tuple[int, int, int]]:
    """Read JSON, HTML, JSON over and over while the writer runs.

    Every read must be a complete document. Returns (json1, html, json2) sequences.
    """
    json_path = path.with_suffix(".json")
    samples = []
    while writing():
        j1 = json.loads(json_path.read_text())["sequence"]
        html = path.read_text()
        assert html.endswith("</div>\n"), html[-200:]
        h = _html_sequence(html)
        j2 = json.loads(json_path.read_text())["sequence"]
        samples.append((j1, h, j2))
    return samples


def _check_samples(samples: list[tuple[int, int, int]], min_matched: int) -> None:
    assert samples
    matched = 0
    for j1, h, j2 in samples:
        assert j1 <= j2
        if j1 == j2:
            # No JSON rename happened while the HTML was read: the HTML is the
            # JSON's own dump, or the one before if its rename was still due.
            assert h in (j1 - 1, j1), (j1, h, j2)
            matched += h == j1
    assert matched >= min_matched, samples[:20]


def test_trigger_dumps_within_300ms_and_is_deleted(st: ModuleType, tmp_path: Path) -> None:
    path, trigger = tmp_path / "trace.html", tmp_path / "dump-now"
    st.trace_start(str(path), interval=60, trigger=str(trigger))
    try:
        _wait_for(path.exists, 5, "the first dump")
        first = json.loads(path.with_suffix(".json").read_text())
        assert first["reason"] == "interval"
        latencies = []
        for attempt in range(3):
            staged = tmp_path / "staging"
            staged.write_text(f"wanted by the test #{attempt}")
            started = time.monotonic()
            os.rename(staged, trigger)
            _wait_for(lambda: not trigger.exists(), 5, "the trigger file to be consumed")
            latencies.append(time.monotonic() - started)
            snap = json.loads(path.with_suffix(".json").read_text())
            assert snap["reason"] == "trigger"
            assert snap["trigger"] == f"wanted by the test #{attempt}"
            assert _html_sequence(path.read_text()) == snap["sequence"]
        assert max(latencies) < 0.3, latencies
        (tracer,) = [t for t in snap["threads"] if t["tracer"]]
        assert tracer["name"] == "stacktracer" and tracer["daemon"]
    finally:
        st.trace_stop()


def test_a_trigger_that_cannot_be_deleted_is_dropped(
    st: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A non-empty directory: it exists, cannot be read as a file nor removed.
    path, trigger = tmp_path / "trace.html", tmp_path / "stuck"
    (trigger / "inside").mkdir(parents=True)
    st.trace_start(str(path), interval=60, trigger=str(trigger))
    try:
        _wait_for(lambda: "no longer watching" in capfd.readouterr().err, 5, "a complaint")
        time.sleep(0.1)
        settled = json.loads(path.with_suffix(".json").read_text())
        time.sleep(0.3)  # six more steps: no further dumps and no further complaints
        assert json.loads(path.with_suffix(".json").read_text()) == settled
        assert "stacktracer" not in capfd.readouterr().err
    finally:
        st.trace_stop()


def test_stop_joins_and_is_idempotent_and_start_twice_fails(st: ModuleType, tmp_path: Path) -> None:
    st.trace_stop()  # not running: nothing to do
    st.trace_start(str(tmp_path / "a.html"), interval=60)
    try:
        assert len(_tracer_threads()) == 1
        with pytest.raises(RuntimeError, match="already running"):
            st.trace_start(str(tmp_path / "b.html"))
    finally:
        started = time.monotonic()
        st.trace_stop()
    assert time.monotonic() - started < 1.0
    assert _tracer_threads() == []
    st.trace_stop()
    st.trace_stop()
    # It can be started again after a stop.
    st.trace_start(str(tmp_path / "c.html"), interval=60)
    st.trace_stop()
    assert _tracer_threads() == []


def test_bad_arguments_are_refused(st: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.json"):
        st.trace_start(str(tmp_path / "trace.json"))
    with pytest.raises(ValueError, match="interval"):
        st.trace_start(str(tmp_path / "trace.html"), interval=0)
    with pytest.raises(ValueError, match="directory does not exist"):
        st.trace_start(str(tmp_path / "missing" / "trace.html"))
    assert _tracer_threads() == []
    assert st.json_path_for("out/trace.html") == "out/trace.json"
    assert st.json_path_for("trace") == "trace.json"


def test_auto_mode_rewrites_every_interval(st: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "trace.html"
    st.trace_start(str(path), interval=0.1)
    try:
        _wait_for(path.exists, 5, "the first dump")
        first = _html_sequence(path.read_text())
        _wait_for(lambda: _html_sequence(path.read_text()) >= first + 3, 5, "three more dumps")
    finally:
        st.trace_stop()
    assert json.loads(path.with_suffix(".json").read_text())["reason"] == "interval"


def test_only_if_missing_mode(st: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "trace.html"
    st.trace_start(str(path), interval=0.1, auto=False)
    try:
        _wait_for(path.exists, 5, "the first dump")
        first = _html_sequence(path.read_text())
        time.sleep(0.5)  # five intervals: the file exists, so nothing is rewritten
        assert _html_sequence(path.read_text()) == first
        path.unlink()
        _wait_for(path.exists, 5, "the file to be written again")
        assert _html_sequence(path.read_text()) > first
        assert json.loads(path.with_suffix(".json").read_text())["reason"] == "missing"
    finally:
        st.trace_stop()


# -- slow tier: Python 2.7 and 3.11 child interpreters with greenlet ----------------------

SCENARIO = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import greenlet
import stacktracer

out, trigger, release = sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()

def inner():
    greenlet.getcurrent().parent.switch()  # SUSPENDED-HERE

def holder():
    lock.acquire()
    inner()

def releaser():
    while not os.path.exists(release):
        time.sleep(0.01)
    lock.release()

g = greenlet.greenlet(holder)
g.switch()  # comes back at once: holder is suspended and still holds the lock
threading.Thread(target=releaser, name="releaser").start()
stacktracer.trace_start(out, interval=60, trigger=trigger)
print("ready")
sys.stdout.flush()
lock.acquire()  # MAIN-BLOCKED-HERE
lock.release()
stacktracer.trace_stop()
stacktracer.trace_stop()
print(json.dumps({"tracers": [t.name for t in threading.enumerate() if t.name == "stacktracer"]}))
"""

WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import greenlet  # with greenlet imported, every dump scans the heap
import stacktracer
for _ in range(int(sys.argv[3])):
    stacktracer.dump(sys.argv[2])
"""


@pytest.fixture(scope="module", params=sorted(TRACER_ENVS))
def child_python(request: pytest.FixtureRequest) -> Path:
    version = request.param
    spec = EnvSpec(f"tracer-py{version.replace('.', '')}", version, TRACER_ENVS[version])
    return ensure_env(spec, ROOT / "_build" / "envs").python


def _readline(proc: subprocess.Popen[Any], timeout: float) -> str:
    stream = proc.stdout
    assert stream is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert result, f"no line from the child within {timeout}s"
    return result[0].strip()


@pytest.mark.slow
def test_blocked_main_thread_and_suspended_greenlet(child_python: Path, tmp_path: Path) -> None:
    out, trigger, release = tmp_path / "trace.html", tmp_path / "trigger", tmp_path / "release"
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    argv = [child_python, script, CODE, out, trigger, release]
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _readline(proc, 30) == "ready"
        snap = None
        for attempt in range(30):  # until the main thread has reached the acquire
            staged = tmp_path / "staging"
            staged.write_text(f"attempt {attempt}")
            started = time.monotonic()
            os.rename(staged, trigger)
            _wait_for(lambda: not trigger.exists(), 5, "the trigger file to be consumed")
            latency = time.monotonic() - started
            snap = json.loads(out.with_suffix(".json").read_text())
            if snap["threads"][0]["frames"][-1]["source"].endswith("# MAIN-BLOCKED-HERE"):
                break
            time.sleep(0.1)
        assert snap is not None
        assert latency < 0.3
        assert snap["reason"] == "trigger" and snap["trigger"] == f"attempt {attempt}"
        assert snap["python"].startswith(_version_of(child_python))

        main = snap["threads"][0]
        assert main["name"] == "MainThread" and main["main"] and not main["tracer"]
        assert main["frames"][-1] == {
            "file": str(script),
            "line": SCENARIO.splitlines().index("lock.acquire()  # MAIN-BLOCKED-HERE") + 1,
            "function": "<module>",
            "source": "lock.acquire()  # MAIN-BLOCKED-HERE",
        }
        names = {t["name"]: t for t in snap["threads"]}
        assert names["releaser"]["frames"][-1]["function"] == "releaser"
        assert names["stacktracer"]["tracer"] and names["stacktracer"]["daemon"]

        (held,) = [g for g in snap["greenlets"] if g["frames"][0]["function"] == "holder"]
        assert held["kind"] == "greenlet" and held["name"].startswith("greenlet 0x")
        assert [f["function"] for f in held["frames"]] == ["holder", "inner"]
        assert held["frames"][0]["source"] == "inner()"
        assert held["frames"][1]["source"].endswith("# SUSPENDED-HERE")

        html = out.read_text()
        assert _html_sequence(html) == snap["sequence"]
        assert "Thread MainThread (main thread)" in html
        assert re.search(r"Greenlet 0x[0-9a-f]+ \(suspended\)", html)
        assert "MAIN-BLOCKED-HERE" in html and "SUSPENDED-HERE" in html
        assert "<span class=" not in html and 'style="color: #' in html

        release.touch()
        stdout, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert json.loads(stdout.strip().splitlines()[-1]) == {"tracers": []}
    finally:
        procs.shutdown(proc, interrupt_timeout=0)


@pytest.mark.slow
def test_atomic_writes_from_a_child(child_python: Path, tmp_path: Path) -> None:
    path = tmp_path / "trace.html"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    subprocess.run([child_python, script, CODE, path, "1"], check=True, timeout=60)
    proc = procs.spawn([child_python, script, CODE, path, "400"], stderr=subprocess.PIPE)
    try:
        samples = _poll_pairs(path, lambda: proc.poll() is None)
        assert proc.wait(60) == 0
    finally:
        procs.shutdown(proc, interrupt_timeout=0)
    _check_samples(samples, min_matched=5)
    assert json.loads(path.with_suffix(".json").read_text())["sequence"] == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.html", "trace.json", "writer.py"]


def _version_of(python: Path) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()
