# One run of one variant: start the app in its environment, apply the
# scenario's load step by step, watch for progress, capture the stacks the
# moment a stall is recognised, classify, and stop everything.
#
# The watchdog polls every few milliseconds instead of sleeping a fixed tick:
# a stall is "requests outstanding and none answered for `scenario.stall`
# seconds", and the capture is requested at once through the tracer's trigger
# file, so evidence follows the stall by a fraction of a second. Whatever
# happens (verdict, error, Ctrl-C) the app's process group is killed and every
# request thread is joined before run_variant returns or raises.
from __future__ import annotations

import http.client
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprokit import procs
from reprokit.classify import Outcome, Verdict, classify
from reprokit.envs import Env
from reprokit.errors import ServerError
from reprokit.matrix import LoadStep, Scenario, Variant
from reprokit.redact import redact_uri
from reprokit.stack import Stack

log = logging.getLogger(__name__)

POLL = 0.01
CAPTURE_TIMEOUT = 5.0
TRACER_INTERVAL = 5.0  # the classic tracer's tick; the harness triggers dumps itself
SAMPLE_EVERY = 0.1
SEED_MARKER = "reprokit_seeded"  # present once reprokit seeded a database itself

Progress = Callable[[str], None]


@dataclass
class Request:
    step: int
    path: str
    started: float
    finished: float | None = None
    status: int | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Capture:
    stacks: dict[str, Any]
    html: str
    requested_at: float
    written_at: float


@dataclass
class RunResult:
    variant: Variant
    verdict: Verdict
    outcome: Outcome
    started_at: float  # wall clock
    t0: float  # monotonic clock at the app's start; timeline times are relative to it
    finished_at: float
    requests: list[Request]
    capture: Capture | None
    stall_detected_after: float | None
    time_to_verdict: float
    samples: list[tuple[float, int]]
    app_log: str
    env: Env
    stack: dict[str, Any]


class _Sampler(threading.Thread):
    """Samples the server's current connection count (serverStatus) during a run."""

    def __init__(self, uri: str, t0: float) -> None:
        super().__init__(name="reprokit-sampler", daemon=True)
        self.uri, self.t0 = uri, t0
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            from pymongo import MongoClient

            client: Any = MongoClient(
                self.uri, directConnection=True, serverSelectionTimeoutMS=2000
            )
        except Exception as exc:  # noqa: BLE001 - the plot is optional; the run is not
            log.debug("connection sampler not started: %s", exc)
            return
        try:
            while not self._halt.is_set():
                try:
                    status = client.admin.command("serverStatus")
                    current = int(status.get("connections", {}).get("current", 0))
                    self.samples.append((round(time.monotonic() - self.t0, 4), current))
                except Exception as exc:  # noqa: BLE001 - a missed sample is not a failure
                    log.debug("serverStatus failed: %s", exc)
                self._halt.wait(SAMPLE_EVERY)
        finally:
            client.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def seed_database(stack: Stack, scenario: Scenario) -> None:
    """Fill the scenario's collections directly on the server (pymongo 4)."""
    if scenario.seed is None:
        return
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    seed = scenario.seed
    rng = random.Random(66)
    client: Any = MongoClient(stack.upstream, directConnection=True, serverSelectionTimeoutMS=5000)
    try:
        db = client[seed.database]
        if stack.server.get("external"):
            _refuse_foreign_data(db, seed)
        for name in seed.collections:
            db.drop_collection(name)
            if seed.documents:
                db[name].insert_many(
                    [
                        {"i": i, "v": rng.random(), "t": rng.randint(0, 2**31 - 1)}
                        for i in range(seed.documents)
                    ]
                )
        db[SEED_MARKER].replace_one({"_id": scenario.name}, {"_id": scenario.name}, upsert=True)
    except PyMongoError as exc:
        raise ServerError(
            f"could not seed {seed.database}.{','.join(seed.collections)}: "
            + redact_uri(str(exc)).split(" (configured")[0][:300]
        ) from None
    finally:
        client.close()


def _refuse_foreign_data(db: Any, seed: Any) -> None:
    """On someone else's server, replace only collections reprokit seeded itself."""
    if SEED_MARKER in db.list_collection_names():
        return
    for name in seed.collections:
        count = db[name].estimated_document_count()
        if count:
            raise ServerError(
                f"{seed.database}.{name} on MONGODB_URI already holds {count} documents that "
                "reprokit did not write; a run drops and reseeds that collection",
                tip="point MONGODB_URI at a scratch server, or drop the collection yourself",
            )


def _fetch(base: str, request: Request, timeout: float, t0: float) -> None:
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", request.path)
        response = conn.getresponse()
        request.body = response.read().decode("utf-8", "replace")
        request.status = response.status
        request.headers = {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException) as exc:
        request.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        request.finished = time.monotonic() - t0


def _check(step: LoadStep, request: Request) -> str | None:
    """None if the answer is what the step expects, else one line saying why not."""
    where = f"GET {request.path}"
    if request.error is not None:
        return f"{where} failed: {request.error}"
    if request.status != step.expect_status:
        return f"{where} answered {request.status}, expected {step.expect_status}"
    if step.expect_body is not None and request.body.strip() != step.expect_body:
        return f"{where} answered {request.body.strip()[:80]!r}, expected {step.expect_body!r}"
    for name, value in step.expect_headers:
        got = request.headers.get(name.lower())
        if got != value:
            return f"{where} header {name} is {got!r}, expected {value!r}"
    return None


class App:
    """The app under test: a process group, its log file, its tracer files."""

    def __init__(
        self,
        env: Env,
        scenario: Scenario,
        stack: Stack | None,
        workdir: Path,
        *,
        interval: float = TRACER_INTERVAL,
        triggered: bool = True,
    ) -> None:
        self.workdir = workdir
        self.log_path = workdir / "app.log"
        self.trace_html = workdir / "trace.html"
        self.trace_json = workdir / "trace.json"
        self.trigger = workdir / "trace.trigger"
        child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        child_env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "STACKTRACER_PATH": str(self.trace_html),
                "STACKTRACER_INTERVAL": str(interval),
            }
        )
        if triggered:
            child_env["STACKTRACER_TRIGGER"] = str(self.trigger)
        if stack is not None:
            child_env["MONGODB_URI"] = stack.uri
        child_env.update(dict(scenario.env))
        with open(self.log_path, "wb") as log_file:
            self.proc = procs.spawn(
                [env.python, scenario.app, *scenario.args],
                cwd=workdir,
                env=child_env,
                stdout=log_file,
                stderr=log_file,
            )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().strip().splitlines()[-lines:])

    def wait_ready(self, pattern: str, timeout: float) -> str:
        """The URL the app announced; raises StartupFailed with a reason."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.log_text())
            if match:
                return match.group("url")
            if self.proc.poll() is not None:
                raise StartupFailed(
                    f"it exited with status {self.proc.returncode}:\n{self.log_tail()}"
                )
            time.sleep(POLL)
        raise StartupFailed(
            f"it printed nothing matching {pattern!r} within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def capture(self, label: str, timeout: float = CAPTURE_TIMEOUT) -> Capture | None:
        """Ask the tracer for a dump now and wait for the matching pair of files."""
        nonce = f"{label}-{uuid.uuid4().hex[:12]}"
        requested = time.monotonic()
        tmp = self.trigger.with_name(self.trigger.name + ".tmp")
        tmp.write_text(nonce)
        os.replace(tmp, self.trigger)
        deadline = requested + timeout
        while time.monotonic() < deadline:
            stacks = self._read_json()
            if stacks is not None and stacks.get("trigger") == nonce:
                html = self._read_html_after(stacks, deadline)
                if html is not None:
                    return Capture(stacks, html, requested, time.monotonic())
            if self.proc.poll() is not None:
                return None
            time.sleep(POLL / 2)
        log.warning("the tracer did not answer the %s trigger within %.1fs", label, timeout)
        return None

    def _read_json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.trace_json.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _read_html_after(self, stacks: dict[str, Any], deadline: float) -> str | None:
        # The tracer renames the JSON twin, then the HTML, and deletes the
        # trigger file last: once the trigger is gone the pair is complete.
        # The HTML names its dump's sequence number, which must match.
        marker = f'data-sequence="{stacks.get("sequence")}"'
        while time.monotonic() < deadline:
            if not self.trigger.exists():
                try:
                    html = self.trace_html.read_text(encoding="utf-8")
                except OSError:
                    html = ""
                if marker in html:
                    return html
            time.sleep(POLL / 2)
        return None

    def stop(self, hung: bool) -> None:
        # A deadlocked Python 2 main thread never runs a SIGINT handler: skip it.
        procs.shutdown(self.proc, interrupt_timeout=0 if hung else 1.0, terminate_timeout=2.0)


class StartupFailed(Exception):
    pass


def run_variant(
    scenario: Scenario,
    variant: Variant,
    env: Env,
    stack: Stack | None,
    workdir: Path,
    progress: Progress | None = None,
) -> RunResult:
    """Run the scenario once in `env`; never leaves the app running."""
    say = progress or (lambda message: None)
    started_at = time.time()
    t0 = time.monotonic()
    requests: list[Request] = []
    threads: list[threading.Thread] = []
    sampler = _Sampler(stack.upstream, t0) if stack is not None else None
    if sampler is not None:
        sampler.start()
    say("starting the app")
    app = App(env, scenario, stack, workdir)
    capture: Capture | None = None
    stall_after: float | None = None
    stalled = False
    app_exit: int | None = None
    failures: list[str] = []
    startup_error: str | None = None
    try:
        try:
            url = app.wait_ready(scenario.ready, scenario.startup_timeout)
        except StartupFailed as exc:
            startup_error = str(exc)
            url = ""
        load_start = time.monotonic()
        if startup_error is None:
            say(f"app ready at {url}; applying load")
            for index, step in enumerate(scenario.load):
                batch = [
                    Request(step=index, path=step.path, started=time.monotonic() - t0)
                    for _ in range(step.concurrency)
                ]
                requests.extend(batch)
                for request in batch:
                    thread = threading.Thread(
                        target=_fetch,
                        args=(url, request, scenario.timeout, t0),
                        name=f"reprokit-request-{len(threads)}",
                        daemon=True,
                    )
                    threads.append(thread)
                    thread.start()
                stalled, app_exit = _watch(app, batch, scenario, t0, load_start)
                if stalled:
                    stall_after = time.monotonic() - load_start
                    say(f"stall after {stall_after:.2f}s; capturing stacks")
                    capture = app.capture("stall")
                    break
                if app_exit is not None:
                    break
                failures.extend(f for f in (_check(step, r) for r in batch) if f)
                if failures:
                    break
            if not stalled and app_exit is None and not failures:
                time.sleep(0.2)  # let the IOLoop settle so the dump shows it idle
                capture = app.capture("final")
        outcome = Outcome(
            sent=len(requests),
            answered=sum(1 for r in requests if r.finished is not None and r.error is None),
            failures=tuple(failures),
            stalled=stalled,
            app_exit=app_exit,
            startup_error=startup_error,
        )
        verdict = classify(outcome, capture.stacks if capture else None, scenario.blocked_on)
        time_to_verdict = time.monotonic() - load_start
        say(f"verdict {verdict.verdict} after {time_to_verdict:.2f}s")
    finally:
        app.stop(hung=stalled)
        for thread in threads:
            thread.join(timeout=10)
        if sampler is not None:
            sampler.stop()
    return RunResult(
        variant=variant,
        verdict=verdict,
        outcome=outcome,
        started_at=started_at,
        t0=t0,
        finished_at=time.time(),
        requests=requests,
        capture=capture,
        stall_detected_after=stall_after,
        time_to_verdict=time_to_verdict,
        samples=sampler.samples if sampler is not None else [],
        app_log=app.log_text(),
        env=env,
        stack=dict(stack.server, gateway=stack.gateway) if stack is not None else {},
    )


def _watch(
    app: App, batch: list[Request], scenario: Scenario, t0: float, load_start: float
) -> tuple[bool, int | None]:
    """Wait for a step's requests; return (stalled, app exit status)."""
    step_start = time.monotonic()
    while True:
        now = time.monotonic()
        finished = [r.finished for r in batch if r.finished is not None]
        if len(finished) == len(batch):
            return False, None
        if app.proc.poll() is not None:
            return False, app.proc.returncode
        last_progress = max([step_start, *(t0 + f for f in finished)])
        if now - last_progress >= scenario.stall or now - load_start >= scenario.timeout:
            return True, None
        time.sleep(POLL)
