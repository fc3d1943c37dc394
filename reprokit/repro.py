# `reprokit repro`: run the selected variants of a matrix, store the evidence
# of each whose verdict is the expected one, print a summary, and exit
# non-zero if any variant failed or surprised. The work is in batch.py.
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from reprokit.errors import ReproError
from reprokit.redact import redact_uri


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matrix", type=Path, default=Path("code/matrix.toml"), help="the matrix file"
    )
    parser.add_argument(
        "--variants",
        default=os.environ.get("VARIANTS", ""),
        help="comma-separated variant names to run (default: all; env VARIANTS)",
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="variants run at once (default: CPU count)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("_build/envs"), help="where environments are cached"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--evidence", type=Path, default=None, help="store evidence here instead of the matrix's"
    )


def report_failures(outcomes: list) -> int:  # type: ignore[type-arg]
    failed = [o for o in outcomes if not o.as_expected]
    for outcome in failed:
        error = outcome.error
        print(f"error: {outcome.name}: {redact_uri(str(error))}", file=sys.stderr)
        if error is not None and error.tip:
            print(f"tip: {redact_uri(error.tip)}", file=sys.stderr)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    from reprokit import procs
    from reprokit.artifacts import write_index
    from reprokit.batch import run_variants
    from reprokit.matrix import load_matrix
    from reprokit.progress import Progress, project_redactor, table

    matrix = load_matrix(args.matrix)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    variants = matrix.select(names)
    if args.jobs < 0:
        raise ReproError("--jobs must be 0 (one per CPU) or more")
    evidence = (args.evidence or matrix.scenario.evidence).resolve()
    progress = Progress([v.name for v in variants], project_redactor(matrix))
    procs.install_signal_handlers()
    progress.note(f"repro: scenario {matrix.scenario.name}, {len(variants)} variant(s)")
    started = time.monotonic()
    outcomes = run_variants(
        matrix, variants, cache=args.cache, evidence=evidence, progress=progress, jobs=args.jobs
    )
    if any(o.stored for o in outcomes):
        write_index(
            evidence, matrix.scenario.name, matrix.scenario.title, [v.name for v in matrix.variants]
        )
    rows = [("variant", "verdict", "expected", "to verdict", "wall", "result")]
    for o in outcomes:
        rows.append(
            (
                o.name,
                o.verdict or "-",
                o.expected or "-",
                f"{o.time_to_verdict:.2f}s" if o.time_to_verdict is not None else "-",
                f"{o.wall:.1f}s",
                "stored" if o.stored else "FAILED",
            )
        )
    progress.note("\n" + table(rows))
    progress.note(f"\nrepro: {len(outcomes)} variant(s) in {time.monotonic() - started:.1f}s")
    return report_failures(outcomes)
