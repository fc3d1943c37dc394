# Running a set of variants in parallel: the engine behind `repro`, `check`
# and `bisect`.
#
# Each variant gets its own temporary directory, environment, server stack and
# app; variants run in worker threads (bounded by the CPU count). A worker
# turns every failure into its Outcome instead of raising, so one broken
# variant never hides the others. Evidence is written only when asked to and
# only after the verdict matched the expected one, through
# artifacts.store_variant (atomic per variant), redacted and sanitized on the
# way. Ctrl-C or SIGTERM cancels: no new child starts, every live child is
# stopped, and each worker's `finally` removes its directory.
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprokit import procs
from reprokit.errors import ArtifactError, ReproError, RunError, UnexpectedVerdict
from reprokit.matrix import Matrix, Variant
from reprokit.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """A variant's end: a verdict, or an error that prevented one."""

    name: str
    expected: str | None
    verdict: str | None = None
    reason: str = ""
    time_to_verdict: float | None = None
    time_to_evidence: float | None = None
    wall: float = 0.0
    env_seconds: float = 0.0
    env_reused: bool = False
    error: ReproError | None = None
    stored: Path | None = None

    @property
    def as_expected(self) -> bool:
        return self.error is None and (self.expected is None or self.verdict == self.expected)


def run_variants(
    matrix: Matrix,
    variants: tuple[Variant, ...] | list[Variant],
    *,
    cache: Path,
    evidence: Path | None,
    progress: Progress,
    jobs: int = 0,
    labels: list[str] | None = None,
    refresh: str = "make repro",
) -> list[Outcome]:
    """Run each variant once; store evidence under `evidence` unless it is None.

    `labels` names the progress line of each entry (for repeated runs of one
    variant); it defaults to the variant names.
    """
    from reprokit.interpreters import find_interpreter

    labels = labels or [v.name for v in variants]
    # What can be checked before anything runs is checked first, so a missing
    # interpreter stops the whole run instead of one variant among others.
    for python in sorted({v.python for v in variants}):
        find_interpreter(python)
    if evidence is not None:
        check_writable(evidence)
    jobs = jobs or min(len(variants), os.cpu_count() or 1)
    external = os.environ.get("MONGODB_URI")
    if external and matrix.scenario.server == "mongodb":
        from reprokit.probe import probe_server

        probe_server(external)  # one clear error up front, not one per variant
        jobs = 1  # variants would seed and read the same external database
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="variant")
    try:
        futures = [
            pool.submit(_run_one, matrix, variant, label, cache, evidence, progress, refresh)
            for variant, label in zip(variants, labels, strict=True)
        ]
        # Wait in short slices: a signal may be delivered to a worker thread,
        # and the main thread only runs Python signal handlers when it wakes.
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.1)
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        procs.cancel()
        procs.shutdown_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_writable(directory: Path) -> None:
    """Fail before a run, not after it, if evidence could not be stored."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise ArtifactError(
            f"cannot write evidence to {directory}: {exc.strerror or exc}",
            tip="make the directory writable, or pass --evidence DIR",
        ) from None


def _run_one(
    matrix: Matrix,
    variant: Variant,
    label: str,
    cache: Path,
    evidence: Path | None,
    progress: Progress,
    refresh: str,
) -> Outcome:
    from reprokit.envs import EnvSpec, ensure_env
    from reprokit.runner import run_variant, seed_database
    from reprokit.stack import start_stack

    def say(message: str) -> None:
        progress(label, message)

    scenario = matrix.scenario
    started = time.monotonic()
    outcome = Outcome(name=variant.name, expected=variant.expect or None)
    stack = None
    workdir = Path(tempfile.mkdtemp(prefix=f"reprokit-{variant.name}-"))
    try:
        procs.check_cancelled()
        env = ensure_env(
            EnvSpec(variant.name, variant.python, variant.requirements),
            cache,
            progress=lambda m: say(f"env: {m}"),
        )
        outcome.env_seconds, outcome.env_reused = env.seconds, env.reused
        say(
            f"env {'reused' if env.reused else 'built'} in {env.seconds:.1f}s (Python {env.python_version})"
        )
        if scenario.server == "mongodb":
            say("starting the server stack")
            stack = start_stack(workdir, upstream=os.environ.get("MONGODB_URI") or None)
            via = "via the legacy gateway" if stack.gateway else "directly"
            say(f"{stack.server.get('name')} {stack.server.get('version')} {via}; seeding")
            seed_database(stack, scenario)
        result = run_variant(scenario, variant, env, stack, workdir, progress=say)
        outcome.verdict = result.verdict.verdict
        outcome.reason = result.verdict.reason
        outcome.time_to_verdict = result.time_to_verdict
        if result.capture is not None and result.stall_detected_after is not None:
            outcome.time_to_evidence = result.capture.written_at - result.capture.requested_at
        if outcome.expected is not None and outcome.verdict != outcome.expected:
            tail = "\n".join(result.app_log.strip().splitlines()[-10:])
            from reprokit.artifacts import project_root
            from reprokit.redact import Redactor

            shown = Redactor({str(project_root(matrix.path.parent)): "<project>"})
            raise UnexpectedVerdict(
                f"expected {outcome.expected}, saw {outcome.verdict}: {shown.text(outcome.reason)}"
                + (f"\napp log (last lines):\n{tail}" if tail else ""),
                tip="the previous evidence was kept; rerun with -v for details",
            )
        if evidence is not None:
            from reprokit.artifacts import store_variant

            files = evidence_files(matrix, result, workdir, refresh)
            procs.check_cancelled()  # an interrupted run stores nothing
            outcome.stored = store_variant(evidence, variant.name, files)
        say(f"{outcome.verdict}: {outcome.reason}")
    except ReproError as exc:
        if procs.cancelled():
            # Whatever broke, it broke because the run was stopped.
            outcome.error = procs.Cancelled("interrupted")
            say("interrupted")
        else:
            outcome.error = exc
            say(f"failed: {str(exc).splitlines()[0]}")
    except Exception as exc:
        log.exception("variant %s failed unexpectedly", variant.name)
        outcome.error = RunError(
            f"unexpected {type(exc).__name__}: {exc}",
            tip="this is a bug in reprokit; rerun with -v for the traceback",
        )
        say(f"failed: {outcome.error}")
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        outcome.wall = time.monotonic() - started
    return outcome


def evidence_files(
    matrix: Matrix, result: Any, workdir: Path, refresh: str = "make repro"
) -> dict[str, bytes]:
    """The files of a variant's evidence, redacted and sanitized."""
    from reprokit.artifacts import dumps, project_root, redactor_for, run_record
    from reprokit.sanitize import sanitize_trace_html
    from reprokit.timeline import render_timeline

    scenario = matrix.scenario
    project = project_root(matrix.path.parent)
    env_record = json.loads((result.env.path / "env.json").read_text())
    redactor = redactor_for(
        project=project,
        venv=result.env.path,
        interpreter=Path(env_record["interpreter"]),
        workdir=workdir,
    )
    if result.capture is None:
        raise ArtifactError(
            f"variant {result.variant.name}: the tracer wrote no stacks, so there is no evidence",
            tip="check that the app starts code/stacktracer.py with STACKTRACER_TRIGGER",
        )
    stacks = redactor.data(result.capture.stacks)
    html = sanitize_trace_html(redactor.html(result.capture.html))
    load_start = min((r.started for r in result.requests), default=0.0)
    latencies = [
        round(r.finished - r.started, 4)
        for r in result.requests
        if r.finished is not None and r.error is None
    ]
    stall = result.stall_detected_after
    record = run_record(
        scenario=scenario.name,
        variant=result.variant.name,
        python=result.env.python_version,
        requirements=list(result.variant.requirements),
        packages=result.env.packages,
        server=result.stack,
        started_at=result.started_at,
        finished_at=result.finished_at,
        requests={
            "sent": result.outcome.sent,
            "answered": result.outcome.answered,
            "errors": len(result.outcome.failures),
            "latencies": latencies,
        },
        stall_detected_after=stall,
        time_to_verdict=result.time_to_verdict,
        time_to_evidence=(
            result.capture.written_at - result.capture.requested_at if stall is not None else None
        ),
        verdict=result.verdict.verdict,
        expected=result.variant.expect,
        reason=redactor.text(result.verdict.reason),
        project=project,
        code_files=[os.path.relpath(p, project) for p in scenario.code_files],
        refresh=refresh,
        timeline={
            "load_started": round(load_start, 4),
            "stall_at": round(load_start + stall, 4) if stall is not None else None,
            "capture_at": round(result.capture.written_at - result.t0, 4),
            "requests": [
                {
                    "path": r.path,
                    "step": r.step,
                    "start": round(r.started, 4),
                    "end": round(r.finished, 4) if r.finished is not None else None,
                    "status": r.status,
                }
                for r in result.requests
            ],
            "connections": [[t, n] for t, n in result.samples],
        },
    )
    return {
        "timeline.svg": render_timeline(record),
        "trace.html": html.encode("utf-8"),
        "trace.json": dumps(stacks),
        "run.json": dumps(record),
    }
