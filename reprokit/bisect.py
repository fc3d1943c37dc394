# `reprokit bisect PACKAGE --from X --to Y`: which releases have the bug?
#
# Not a binary search: releases of old packages are few, and a verdict per
# release is what a reader wants to see. Every final release in the range
# (from the package index, through pip) becomes a variant with the pins the
# matrix's [bisect] rules give it; variants the matrix already declares are
# run as declared. Verdicts: ok is good, deadlock and hang are bad, error is
# unknown. `--save` stores each release's evidence and appends the new
# releases to the matrix as variants expecting what was seen.
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from reprokit.errors import MatrixError, ReproError
from reprokit.matrix import Matrix, Variant, _merge_pins

BAD = ("deadlock", "hang")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reprokit.repro import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("package", nargs="?", default=None, help="default: the matrix's [bisect]")
    parser.add_argument("--from", dest="low", required=True, help="first release (inclusive)")
    parser.add_argument("--to", dest="high", required=True, help="last release (inclusive)")
    parser.add_argument(
        "--save",
        action="store_true",
        help="store each release's evidence where the matrix's [bisect] evidence points",
    )
    parser.add_argument(
        "--add-variants",
        action="store_true",
        help="append the releases the matrix lacks to it as variants expecting what was seen",
    )


def list_releases(package: str) -> list[str]:
    """Every version of `package` the configured index offers (through pip)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not match:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ReproError(
            f"could not list the releases of {package!r} from the package index: " + " ".join(tail)
        )
    return [v.strip() for v in match.group(1).split(",") if v.strip()]


def select_releases(versions: list[str], low: str, high: str) -> list[str]:
    """Final releases between low and high inclusive, oldest first (pure)."""
    from packaging.version import InvalidVersion, Version

    try:
        lo, hi = Version(low), Version(high)
    except InvalidVersion as exc:
        raise ReproError(f"--from/--to must be versions: {exc}") from None
    chosen = []
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if not version.is_prerelease and not version.is_devrelease and lo <= version <= hi:
            chosen.append(version)
    return [str(v) for v in sorted(chosen)]


def release_variants(matrix: Matrix, package: str, releases: list[str]) -> list[Variant]:
    """One variant per release: the matrix's own when declared, else built from the rules."""
    from packaging.specifiers import SpecifierSet

    bisect = matrix.bisect
    declared = {v.name: v for v in matrix.variants}
    variants = []
    for release in releases:
        name = f"{package}-{release}"
        if name in declared:
            variants.append(declared[name])
            continue
        pins = matrix.scenario.requirements
        for rule in bisect.pins if bisect else ():
            if SpecifierSet(rule.versions).contains(release, prereleases=True):
                pins = _merge_pins(pins, rule.requirements)
        pins = _merge_pins(pins, (f"{package}=={release}",))
        python = bisect.python if bisect else "2.7"
        variants.append(Variant(name=name, python=python, requirements=pins, expect=""))
    return variants


def summarize(package: str, results: list[tuple[str, str | None]]) -> list[str]:
    """Lines naming the bad releases and each good/bad boundary (pure)."""
    bad = [release for release, verdict in results if verdict in BAD]
    lines = []
    if not bad:
        lines.append(f"no release of {package} in the range shows the bug")
    else:
        lines.append(f"bad releases of {package}: {', '.join(bad)}")
    previous: tuple[str, str | None] | None = None
    for release, verdict in results:
        if previous is not None and previous[1] is not None and verdict is not None:
            was_bad, is_bad = previous[1] in BAD, verdict in BAD
            if is_bad and not was_bad:
                lines.append(f"first bad: {release} (after {previous[0]}, {previous[1]})")
            elif was_bad and not is_bad:
                lines.append(f"first good: {release} (after {previous[0]}, {previous[1]})")
        previous = (release, verdict)
    unknown = [release for release, verdict in results if verdict is None or verdict == "error"]
    if unknown:
        lines.append(f"no verdict for: {', '.join(unknown)}")
    return lines


def append_variants(path: Path, variants: list[tuple[Variant, str]]) -> None:
    """Add [[variant]] tables at the end of the matrix file, keeping the rest as written."""
    blocks = []
    for variant, verdict in variants:
        pins = ", ".join(f'"{p}"' for p in variant.requirements)
        blocks.append(
            f'\n[[variant]]\nname = "{variant.name}"\npython = "{variant.python}"\n'
            f'requirements = [{pins}]\nexpect = "{verdict}"\nnotes = "added by bisect"\n'
        )
    text = path.read_text(encoding="utf-8")
    from reprokit.artifacts import write_atomic
    from reprokit.matrix import parse_matrix

    new_text = text.rstrip("\n") + "\n" + "".join(blocks)
    parse_matrix(new_text, path)  # never write a matrix that does not parse
    write_atomic(path, new_text.encode("utf-8"))


def run(args: argparse.Namespace) -> int:
    from reprokit import procs
    from reprokit.artifacts import write_index
    from reprokit.batch import run_variants
    from reprokit.matrix import load_matrix
    from reprokit.progress import Progress, project_redactor, table

    matrix = load_matrix(args.matrix)
    package = args.package or (matrix.bisect.package if matrix.bisect else None)
    if not package:
        raise MatrixError(f"{matrix.path}: name the package, or declare a [bisect] table")
    releases = select_releases(list_releases(package), args.low, args.high)
    if not releases:
        raise ReproError(f"no release of {package} between {args.low} and {args.high}")
    variants = release_variants(matrix, package, releases)
    progress = Progress([v.name for v in variants], project_redactor(matrix))
    procs.install_signal_handlers()
    progress.note(f"bisect: {package} {', '.join(releases)}")
    started = time.monotonic()
    evidence = None
    if args.save:
        if matrix.bisect is None or matrix.bisect.evidence is None:
            raise MatrixError(
                f'{matrix.path}: --save needs `evidence = "..."` in the [bisect] table'
            )
        evidence = matrix.bisect.evidence
    outcomes = run_variants(
        matrix,
        variants,
        cache=args.cache,
        evidence=evidence,
        progress=progress,
        jobs=args.jobs,
        refresh=f"make bisect SAVE=1 FROM={args.low} TO={args.high}",
    )
    results = [
        (r, o.verdict if o.error is None else None) for r, o in zip(releases, outcomes, strict=True)
    ]
    rows = [("release", "verdict", "time to verdict", "own pins")]
    for variant, release, outcome in zip(variants, releases, outcomes, strict=True):
        rows.append(
            (
                release,
                (outcome.verdict if outcome.error is None else None) or "no verdict",
                f"{outcome.time_to_verdict:.2f}s" if outcome.time_to_verdict else "-",
                " ".join(
                    p
                    for p in variant.requirements
                    if p not in matrix.scenario.requirements and not p.startswith(package + "==")
                ),
            )
        )
    progress.note("\n" + table(rows) + "\n")
    for line in summarize(package, results):
        progress.note(line)
    if evidence is not None:
        stored = [v.name for v, o in zip(variants, outcomes, strict=True) if o.stored]
        write_index(
            evidence, matrix.scenario.name, f"{matrix.scenario.title}: {package} releases", stored
        )
        progress.note(f"stored the evidence of {len(stored)} release(s) in {evidence}")
    if args.add_variants:
        declared = {v.name for v in matrix.variants}
        new = [
            (v, o.verdict)
            for v, o in zip(variants, outcomes, strict=True)
            if v.name not in declared and o.verdict and o.error is None
        ]
        if new:
            append_variants(matrix.path, new)
        progress.note(f"added {len(new)} variant(s) to {matrix.path}")
    progress.note(f"bisect: {len(variants)} release(s) in {time.monotonic() - started:.1f}s")
    from reprokit.repro import report_failures

    return report_failures(outcomes)
