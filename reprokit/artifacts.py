# Evidence on disk: the contract between `make repro` and `make html`.
#
# A variant's evidence is a directory of files (trace.html, trace.json,
# run.json, later timeline.svg). It is replaced as a whole: the new files are
# written into a staging directory beside it, the old directory is renamed
# aside, the staging directory takes its place, and only then is the old one
# removed. A crash between the two renames leaves `.old-*` behind, which the
# next store (or load) puts back. Nothing here decides whether a run deserves
# storing; the caller stores only runs with the expected verdict.
from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
from pathlib import Path
from typing import Any

from reprokit import __version__
from reprokit.codehash import code_hash
from reprokit.redact import Redactor

RUN_SCHEMA = "reprokit.run/1"
INDEX_SCHEMA = "reprokit.evidence/1"
STACKS_FORMAT = "reprokit.stacks/1"


def iso(timestamp: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _recover(evidence: Path, name: str) -> None:
    target = evidence / name
    if target.exists() or not evidence.is_dir():
        return
    olds = sorted(evidence.glob(f".old-{name}-*"))
    if olds:
        os.replace(olds[-1], target)


def store_variant(evidence: Path, name: str, files: dict[str, bytes]) -> Path:
    """Replace the variant's evidence directory with exactly `files`."""
    evidence.mkdir(parents=True, exist_ok=True)
    _recover(evidence, name)
    token = secrets.token_hex(4)
    staging = evidence / f".staging-{name}-{token}"
    old = evidence / f".old-{name}-{token}"
    target = evidence / name
    try:
        staging.mkdir()
        for filename, data in files.items():
            with open(staging / filename, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    except BaseException:
        _recover(evidence, name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target


def write_index(evidence: Path, scenario: str, title: str, variants: list[str]) -> None:
    write_atomic(
        evidence / "index.json",
        dumps({"schema": INDEX_SCHEMA, "scenario": scenario, "title": title, "variants": variants}),
    )


def project_root(start: Path) -> Path:
    """The nearest ancestor holding conf.py (the Sphinx root), else pyproject.toml."""
    for marker in ("conf.py", "pyproject.toml"):
        for directory in [start, *start.parents]:
            if (directory / marker).is_file():
                return directory
    return start


def redactor_for(*, project: Path, venv: Path, interpreter: Path | None, workdir: Path) -> Redactor:
    prefixes: dict[str, str] = {
        str(venv): "<venv>",
        str(venv.resolve()): "<venv>",
        str(project): "<project>",
        str(project.resolve()): "<project>",
        str(workdir): "<tmp>",
        str(workdir.resolve()): "<tmp>",
        str(Path.home()): "<home>",
    }
    # The longest prefix wins, so the venv's packages read as <site-packages>/...:
    # trace lines stay short enough to read without scrolling.
    for site in (*venv.glob("lib/python*/site-packages"), *venv.glob("Lib/site-packages")):
        prefixes[str(site)] = "<site-packages>"
        prefixes[str(site.resolve())] = "<site-packages>"
    if interpreter is not None:
        # .../versions/2.7.18/bin/python2.7 -> .../versions/2.7.18
        base = interpreter.resolve().parent.parent
        prefixes[str(base)] = "<python>"
    return Redactor(prefixes)


def run_record(
    *,
    scenario: str,
    variant: str,
    python: str,
    requirements: list[str],
    packages: dict[str, str],
    server: dict[str, Any],
    started_at: float,
    finished_at: float,
    requests: dict[str, Any],
    stall_detected_after: float | None,
    time_to_verdict: float,
    time_to_evidence: float | None,
    verdict: str,
    expected: str,
    reason: str,
    project: Path,
    code_files: list[str],
    timeline: dict[str, Any],
    refresh: str = "make repro",
) -> dict[str, Any]:
    return {
        "schema": RUN_SCHEMA,
        "scenario": scenario,
        "variant": variant,
        "python": python,
        "requirements": requirements,
        "packages": packages,
        "server": server,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "requests": requests,
        "stall_detected_after": _round(stall_detected_after),
        "time_to_verdict": _round(time_to_verdict),
        "time_to_evidence": _round(time_to_evidence),
        "verdict": verdict,
        "expected": expected,
        "reason": reason,
        "code_hash": code_hash(project, code_files),
        "code_files": sorted(code_files),
        "platform": platform.system().lower(),
        "reprokit": __version__,
        "refresh": refresh,
        "timeline": timeline,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
