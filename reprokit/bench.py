# `reprokit bench`: the speed targets, measured side by side in one run and
# printed as ratios (these machines are noisy, so no absolute number is
# asserted anywhere; each ratio compares two things measured moments apart).
#
#   evidence   time from the first request to a dump showing the deadlock:
#              the watchdog's triggered capture vs the classic tracer's
#              5-second tick (the same app, tracer left to its own timer)
#   repro      warm `repro` of every variant vs the slowest variant alone
#   html       Sphinx full build and no-op rebuild vs a plain sphinx-build of
#              the same sources with the directives stubbed out
#   envs       cold environment build (empty venv, warm pip cache) vs reuse
#   gateway    bench/gateway.py (pymongo 2.8 through the gateway vs pymongo 4)
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECTIONS = ("evidence", "repro", "html", "envs", "gateway")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", type=Path, default=Path("code/matrix.toml"))
    parser.add_argument("--cache", type=Path, default=Path("_build/envs"))
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections ({', '.join(SECTIONS)})"
    )


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def ratio(self, name: str, ours: float, base: float, target: float, unit: str = "s") -> None:
        value = ours / base if base else float("inf")
        verdict = "ok" if value <= target else "MISSED"
        self.rows.append(
            (name, f"{ours:.3f}{unit} / {base:.3f}{unit}", f"{value:.2f}", f"<= {target}", verdict)
        )
        print(f"  {name}: {value:.2f} (target <= {target}: {verdict})", flush=True)

    def show(self) -> None:
        from reprokit.progress import table

        print("\n" + table([("measure", "ours / baseline", "ratio", "target", ""), *self.rows]))


def _quiet_progress() -> Any:
    import io

    from reprokit.progress import Progress

    return Progress([], live=False, stream=io.StringIO())


def bench_evidence(matrix: Any, cache: Path, report: Report) -> None:
    """Triggered capture vs the classic tracer's own 5 s tick, on the deadlocking variant."""
    from reprokit.batch import run_variants

    deadlocked = [v for v in matrix.variants if v.expect == "deadlock"]
    if not deadlocked:
        print("  no variant expects a deadlock; skipped")
        return
    variant = deadlocked[0]
    (ours,) = run_variants(
        matrix, [variant], cache=cache, evidence=None, progress=_quiet_progress()
    )
    if ours.time_to_verdict is None or ours.error is not None:
        print(f"  our run failed: {ours.error}")
        return
    classic_time = _classic_tick_run(matrix, variant, cache)
    if classic_time is None:
        print("  the classic tracer never showed the deadlock; skipped")
        return
    report.ratio("time to evidence vs 5 s tick", ours.time_to_verdict, classic_time, 0.25)


def _classic_tick_run(matrix: Any, variant: Any, cache: Path) -> float | None:
    """Run the app with only the tracer's own 5 s timer; time until a dump shows the hang."""
    import http.client
    import threading
    import urllib.parse

    from reprokit.classify import innermost, main_thread
    from reprokit.envs import EnvSpec, ensure_env
    from reprokit.runner import App, StartupFailed, seed_database
    from reprokit.stack import start_stack

    scenario = matrix.scenario
    env = ensure_env(EnvSpec(variant.name, variant.python, variant.requirements), cache)
    workdir = Path(tempfile.mkdtemp(prefix="reprokit-bench-"))
    stack = start_stack(workdir)
    app = None
    try:
        seed_database(stack, scenario)
        # The classic setup: the tracer's own 5 s timer and nothing else.
        app = App(env, scenario, stack, workdir, interval=5.0, triggered=False)
        try:
            url = app.wait_ready(scenario.ready, scenario.startup_timeout)
        except StartupFailed:
            return None
        parts = urllib.parse.urlsplit(url)
        step = scenario.load[0]

        def fetch() -> None:
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
            try:
                conn.request("GET", step.path)
                conn.getresponse().read()
            except OSError:
                pass
            finally:
                conn.close()

        start = time.monotonic()
        for _ in range(step.concurrency):
            threading.Thread(target=fetch, daemon=True).start()
        while time.monotonic() - start < 12:
            try:
                stacks = json.loads(app.trace_json.read_text())
            except (OSError, ValueError):
                stacks = None
            frame = innermost(main_thread(stacks)) if stacks else None
            if frame and re.search(scenario.blocked_on, frame.get("source") or ""):
                return time.monotonic() - start
            time.sleep(0.01)
        return None
    finally:
        if app is not None:
            app.stop(hung=True)
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def bench_repro(matrix: Any, cache: Path, report: Report) -> None:
    from reprokit.batch import run_variants

    singles = []
    for variant in matrix.variants:
        started = time.monotonic()
        run_variants(matrix, [variant], cache=cache, evidence=None, progress=_quiet_progress())
        singles.append(time.monotonic() - started)
    started = time.monotonic()
    run_variants(matrix, matrix.variants, cache=cache, evidence=None, progress=_quiet_progress())
    together = time.monotonic() - started
    report.ratio("warm repro vs slowest variant", together, max(singles), 1.3)


_STUBS = """
from docutils.parsers.rst import Directive, directives

class _Nothing(Directive):
    required_arguments = 1
    optional_arguments = 10
    final_argument_whitespace = True
    has_content = True
    option_spec = {k: directives.unchanged for k in ("caption", "packages", "threads", "alt", "width")}
    def run(self):
        return []

def setup(app):
    for name in ("repro-trace", "repro-variants", "repro-timeline"):
        app.add_directive(name, _Nothing)
    return {"parallel_read_safe": True}
"""


def _sphinx(source: Path, out: Path, *extra: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", *extra, str(source), str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return time.monotonic() - started


def bench_html(root: Path, report: Report) -> None:
    work = Path(tempfile.mkdtemp(prefix="reprokit-bench-html-"))
    try:
        plain = work / "plain"
        shutil.copytree(
            root, plain, ignore=shutil.ignore_patterns("_build", ".git", "node_modules", "*.pyc")
        )
        (plain / "_bench_stubs.py").write_text(_STUBS)
        conf = (plain / "conf.py").read_text()
        conf = conf.replace('"reprokit.sphinxext",', '"_bench_stubs",')
        (plain / "conf.py").write_text(conf)
        ours_full = _sphinx(root, work / "ours", "-E", "-d", str(work / "ours-doctrees"))
        plain_full = _sphinx(plain, work / "plain-out", "-E", "-d", str(work / "plain-doctrees"))
        ours_noop = _sphinx(root, work / "ours", "-d", str(work / "ours-doctrees"))
        plain_noop = _sphinx(plain, work / "plain-out", "-d", str(work / "plain-doctrees"))
        report.ratio("html full build vs plain sphinx", ours_full, plain_full, 1.5)
        report.ratio("html no-op rebuild vs plain sphinx", ours_noop, plain_noop, 1.1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_envs(matrix: Any, cache: Path, report: Report) -> None:
    from reprokit.envs import EnvSpec, ensure_env

    variant = matrix.variants[0]
    spec = EnvSpec(variant.name, variant.python, variant.requirements)
    fresh = Path(tempfile.mkdtemp(prefix="reprokit-bench-envs-"))
    try:
        # The pip download cache stays shared, as it is between variants.
        (fresh / "pip-cache").symlink_to((cache / "pip-cache").resolve())
        cold = ensure_env(spec, fresh).seconds
        warm = ensure_env(spec, fresh).seconds
        report.ratio("warm env setup vs cold", warm, cold, 0.05)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def bench_gateway(root: Path, report: Report) -> None:
    """bench/gateway.py prints its own table; its best-round ratios join the summary."""
    script = root / "bench" / "gateway.py"
    if not script.exists():
        print("  bench/gateway.py is missing; skipped")
        return
    proc = subprocess.run(
        [sys.executable, str(script)], check=False, cwd=root, timeout=1800,
        capture_output=True, text=True,
    )  # fmt: skip
    print(proc.stdout, end="")
    row = re.compile(r"^\s+(insert|find)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x", re.MULTILINE)
    found = row.findall(proc.stdout)
    if not found:
        print(f"  the gateway benchmark printed no ratios:\n{proc.stderr[-2000:]}")
        return
    for operation, legacy, direct in found:
        report.ratio(f"gateway {operation}: pymongo 2.8 vs 4", float(legacy), float(direct), 1.25)


def run(args: argparse.Namespace) -> int:
    from reprokit import procs
    from reprokit.artifacts import project_root
    from reprokit.errors import ReproError
    from reprokit.matrix import load_matrix

    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        raise ReproError(f"unknown bench section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    procs.install_signal_handlers()
    matrix = load_matrix(args.matrix)
    root = project_root(matrix.path.parent)
    report = Report()
    for section in only:
        print(f"bench: {section}", flush=True)
        if section == "evidence":
            bench_evidence(matrix, args.cache, report)
        elif section == "repro":
            bench_repro(matrix, args.cache, report)
        elif section == "html":
            bench_html(root, report)
        elif section == "envs":
            bench_envs(matrix, args.cache, report)
        elif section == "gateway":
            bench_gateway(root, report)
    report.show()
    missed = [row[0] for row in report.rows if row[4] != "ok"]
    if missed:
        print(
            f"\nbench: {len(missed)} ratio(s) missed the target ({', '.join(missed)}); "
            "one run on a busy machine can: run it again before drawing conclusions"
        )
        return 1
    return 0
