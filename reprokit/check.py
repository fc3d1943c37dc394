# `reprokit check --runs N`: is the reproduction deterministic? Runs every
# selected variant N times (in parallel, nothing stored) and counts verdicts;
# any verdict other than the expected one fails the check.
from __future__ import annotations

import argparse
import time
from collections import Counter

from reprokit.errors import ReproError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reprokit.repro import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--runs", "-n", type=int, default=20, help="runs per variant")


def run(args: argparse.Namespace) -> int:
    from reprokit import procs
    from reprokit.batch import run_variants
    from reprokit.matrix import load_matrix
    from reprokit.progress import Progress, project_redactor, table

    if args.runs < 1:
        raise ReproError("--runs must be at least 1")
    matrix = load_matrix(args.matrix)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    variants = matrix.select(names)
    queue = [v for _ in range(args.runs) for v in variants]
    labels = [f"{v.name}#{i // len(variants) + 1}" for i, v in enumerate(queue)]
    # One live line per variant, not per run: the label's run number changes.
    progress = Progress([v.name for v in variants], project_redactor(matrix))
    procs.install_signal_handlers()
    progress.note(f"check: {len(variants)} variant(s) x {args.runs} run(s)")
    started = time.monotonic()

    class _PerVariant(Progress):
        def __call__(self, name: str, message: str) -> None:
            variant, _, number = name.partition("#")
            progress(variant, f"run {number}/{args.runs}: {message}")

    outcomes = run_variants(
        matrix, queue, cache=args.cache, evidence=None,
        progress=_PerVariant([]), jobs=args.jobs, labels=labels,
    )  # fmt: skip
    rows = [("variant", "expected", "verdicts", "result")]
    failed = False
    for variant in variants:
        mine = [o for o in outcomes if o.name == variant.name]
        counts = Counter(o.verdict or "no verdict" for o in mine)
        good = sum(1 for o in mine if o.as_expected)
        failed |= good != len(mine)
        summary = ", ".join(f"{verdict} {n}/{len(mine)}" for verdict, n in counts.most_common())
        rows.append((variant.name, variant.expect, summary, "ok" if good == len(mine) else "FAIL"))
    progress.note("\n" + table(rows))
    progress.note(f"\ncheck: {len(outcomes)} run(s) in {time.monotonic() - started:.1f}s")
    return 1 if failed else 0
