# `reprokit repro`: run every selected variant of a matrix and store the
# evidence of those whose verdict is the expected one.
#
# Each variant gets its own temporary directory, environment, server stack and
# app; variants run in parallel threads (bounded by the CPU count). A worker
# turns every failure into a per-variant result instead of raising, so one
# broken variant never hides the others; the CLI then reports all of them and
# exits non-zero if any variant failed. Evidence is written only after a
# variant's verdict matched, through artifacts.store_variant (atomic per
# variant), and redacted and sanitized on the way.
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprokit.errors import ReproError, UnexpectedVerdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matrix", type=Path, default=Path("code/matrix.toml"), help="the matrix file"
    )
    parser.add_argument(
        "--variants",
        default=os.environ.get("VARIANTS", ""),
        help="comma-separated variant names to run (default: all)",
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="variants run at once (default: CPU count)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("_build/envs"), help="where environments are cached"
    )
    parser.add_argument(
        "--evidence", type=Path, default=None, help="store evidence here instead of the matrix's"
    )


@dataclass
class Outcome:
    """A variant's end: a result (verdict known) or an error (no verdict)."""

    name: str
    expected: str
    verdict: str | None = None
    reason: str = ""
    time_to_verdict: float | None = None
    wall: float = 0.0
    error: ReproError | None = None
    stored: Path | None = None


class _Printer:
    """One line per step, prefixed by the variant; safe from several threads."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lock = threading.Lock()

    def __call__(self, variant: str, message: str) -> None:
        from reprokit.redact import redact_uri

        with self.lock:
            print(f"[{variant:<{self.width}}] {redact_uri(message)}", flush=True)


def run(args: argparse.Namespace) -> int:
    from reprokit import procs
    from reprokit.matrix import load_matrix

    matrix = load_matrix(args.matrix)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    variants = matrix.select(names)
    jobs = args.jobs or min(len(variants), os.cpu_count() or 1)
    evidence = (args.evidence or matrix.scenario.evidence).resolve()
    printer = _Printer(max(len(v.name) for v in variants))
    procs.install_signal_handlers()
    print(
        f"repro: scenario {matrix.scenario.name}, {len(variants)} variant(s), {jobs} at a time",
        flush=True,
    )
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="variant") as pool:
            futures = [
                pool.submit(_run_one, matrix, v, args.cache, evidence, printer) for v in variants
            ]
            outcomes = [f.result() for f in futures]
    except KeyboardInterrupt:
        procs.shutdown_all()
        raise
    from reprokit.artifacts import write_index

    if any(o.stored for o in outcomes):
        write_index(
            evidence,
            matrix.scenario.name,
            matrix.scenario.title,
            [v.name for v in matrix.variants],
        )
    _summary(outcomes, time.monotonic() - started)
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        assert outcome.error is not None
        print(f"error: {outcome.name}: {outcome.error}", file=sys.stderr)
        if outcome.error.tip:
            print(f"tip: {outcome.error.tip}", file=sys.stderr)
    return 1 if failed else 0


def _summary(outcomes: list[Outcome], wall: float) -> None:
    rows = [("variant", "verdict", "expected", "to verdict", "wall", "result")]
    for o in outcomes:
        rows.append(
            (
                o.name,
                o.verdict or "-",
                o.expected,
                f"{o.time_to_verdict:.2f}s" if o.time_to_verdict is not None else "-",
                f"{o.wall:.1f}s",
                "stored" if o.stored else ("FAILED" if o.error else "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\nrepro: {len(outcomes)} variant(s) in {wall:.1f}s", flush=True)


def _run_one(matrix: Any, variant: Any, cache: Path, evidence: Path, printer: _Printer) -> Outcome:
    from reprokit.envs import EnvSpec, ensure_env
    from reprokit.runner import run_variant, seed_database
    from reprokit.stack import start_stack

    say = lambda message: printer(variant.name, message)  # noqa: E731
    scenario = matrix.scenario
    started = time.monotonic()
    outcome = Outcome(name=variant.name, expected=variant.expect)
    workdir = Path(tempfile.mkdtemp(prefix=f"reprokit-{variant.name}-"))
    stack = None
    try:
        env = ensure_env(
            EnvSpec(variant.name, variant.python, variant.requirements),
            cache,
            progress=lambda m: say(f"env: {m}"),
        )
        say(
            f"env {'reused' if env.reused else 'built'} in {env.seconds:.1f}s "
            f"(Python {env.python_version})"
        )
        if scenario.server == "mongodb":
            stack = start_stack(workdir, upstream=os.environ.get("MONGODB_URI") or None)
            server = stack.server
            via = "via the legacy gateway" if stack.gateway else "directly"
            say(f"server {server.get('name')} {server.get('version')} {via} at {stack.uri}")
            seed_database(stack, scenario)
        result = run_variant(scenario, variant, env, stack, workdir, progress=say)
        outcome.verdict = result.verdict.verdict
        outcome.reason = result.verdict.reason
        outcome.time_to_verdict = result.time_to_verdict
        if result.verdict.verdict != variant.expect:
            tail = "\n".join(result.app_log.strip().splitlines()[-10:])
            raise UnexpectedVerdict(
                f"expected {variant.expect}, saw {result.verdict.verdict}: "
                f"{result.verdict.reason}" + (f"\napp log:\n{tail}" if tail else ""),
                tip="the previous evidence was kept; rerun with -v for details",
            )
        files = _evidence_files(matrix, result, workdir)
        from reprokit.artifacts import store_variant

        outcome.stored = store_variant(evidence, variant.name, files)
        say(f"{outcome.verdict} as expected: {outcome.reason}")
    except ReproError as exc:
        outcome.error = exc
        say(f"failed: {str(exc).splitlines()[0]}")
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        outcome.wall = time.monotonic() - started
    return outcome


def _evidence_files(matrix: Any, result: Any, workdir: Path) -> dict[str, bytes]:
    from reprokit.artifacts import dumps, project_root, redactor_for, run_record
    from reprokit.errors import ArtifactError
    from reprokit.sanitize import sanitize_trace_html

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
        stall_detected_after=result.stall_detected_after,
        time_to_verdict=result.time_to_verdict,
        time_to_evidence=(
            result.capture.written_at - result.capture.requested_at
            if result.verdict.verdict != "ok"
            else None
        ),
        verdict=result.verdict.verdict,
        expected=result.variant.expect,
        reason=redactor.text(result.verdict.reason),
        project=project,
        code_files=[str(p.relative_to(project)) for p in scenario.code_files],
        timeline={
            "load_started": round(load_start, 4),
            "stall_at": (
                round(load_start + result.stall_detected_after, 4)
                if result.stall_detected_after is not None
                else None
            ),
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
    from reprokit.timeline import render_timeline

    return {
        "timeline.svg": render_timeline(record),
        "trace.html": html.encode("utf-8"),
        "trace.json": dumps(stacks),
        "run.json": dumps(record),
    }
