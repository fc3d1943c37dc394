# Reading stored evidence (DESIGN.md, "Evidence") into frozen records. This is
# the only module of the extension that opens files. Every loader is cached by
# (path, mtime, size), so several directives embedding the same variant read
# its files once per process, and an edited file is read again.
#
# Failures are typed: EvidenceMissing (a file is not there: `make repro` has not
# captured it) and EvidenceSchemaError (unreadable JSON, an unknown schema
# version, a missing or mistyped field). Each carries a `subtype` that the
# Sphinx side turns into a warning subtype, and a message naming the file.
from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

# The schemas are defined once, by the side that writes them.
from reprokit.artifacts import INDEX_SCHEMA, RUN_SCHEMA, STACKS_FORMAT
from reprokit.codehash import code_hash
from reprokit.errors import ArtifactError
from reprokit.sanitize import sanitize_trace_html

RUN_FILE = "run.json"
INDEX_FILE = "index.json"
TRACE_HTML_FILE = "trace.html"
TRACE_JSON_FILE = "trace.json"
TIMELINE_FILE = "timeline.svg"

MAKE_TIP = "run `make repro` to capture it"


class EvidenceError(ArtifactError):
    """Stored evidence cannot be used; `subtype` names the kind of problem."""

    subtype: ClassVar[str] = "evidence"

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class EvidenceMissing(EvidenceError):
    subtype = "missing"


class EvidenceSchemaError(EvidenceError):
    subtype = "schema"


@dataclass(frozen=True)
class ScenarioIndex:
    scenario: str
    title: str
    variants: tuple[str, ...]


@dataclass(frozen=True)
class RunInfo:
    """The fields of run.json that a page shows or checks."""

    variant: str
    scenario: str
    python: str
    requirements: tuple[str, ...]
    packages: Mapping[str, str]
    server_name: str | None
    server_version: str | None
    gateway: bool
    verdict: str
    expected: str | None
    time_to_verdict: float | None
    captured_at: datetime | None
    code_hash: str | None
    code_files: tuple[str, ...]
    refresh: str = "make repro"  # the command that captures this evidence again


@dataclass(frozen=True)
class Trace:
    """A variant's stacks: the sanitized HTML, and a plain-text rendering of the JSON twin."""

    html: str
    text: str


# -- file access (the only I/O) ---------------------------------------------------------------


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise EvidenceMissing(f"{path} does not exist; {MAKE_TIP}", path) from None
    except OSError as exc:
        raise EvidenceMissing(f"{path} cannot be read ({exc}); {MAKE_TIP}", path) from None
    return (os.fspath(path), st.st_mtime_ns, st.st_size)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvidenceMissing(f"{path} does not exist; {MAKE_TIP}", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceSchemaError(f"{path} cannot be read as UTF-8 text ({exc})", path) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise EvidenceSchemaError(f"{path} is not valid JSON ({exc})", path) from None
    if not isinstance(data, dict):
        raise EvidenceSchemaError(f"{path} must hold a JSON object", path)
    return data


def clear_cache() -> None:
    """Forget every cached file (tests use it to observe reads)."""
    _load_run.cache_clear()
    _load_index.cache_clear()
    _load_trace.cache_clear()


# -- field access -----------------------------------------------------------------------------


def _check_schema(data: Mapping[str, Any], key: str, expected: str, path: Path) -> None:
    found = data.get(key)
    if found != expected:
        raise EvidenceSchemaError(
            f"{path} has {key} {found!r}, this reprokit reads {expected!r}; "
            f"upgrade reprokit or run `make repro` to capture it again",
            path,
        )


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if name not in data:
        raise EvidenceSchemaError(f"{path} lacks the field {name!r}", path)
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise EvidenceSchemaError(f"{path}: field {name!r} has the wrong type", path)
    return value


def _optional(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if data.get(name) is None:
        return None
    return _field(data, name, kind, path)


def _timestamp(value: str | None, path: Path) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise EvidenceSchemaError(f"{path}: {value!r} is not an ISO-8601 timestamp", path) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# -- loaders ----------------------------------------------------------------------------------


def load_index(scenario_dir: Path) -> ScenarioIndex:
    """Read `<scenario>/index.json`."""
    return _load_index(*_stat_key(scenario_dir / INDEX_FILE))


@functools.lru_cache(maxsize=64)
def _load_index(path_str: str, _mtime: int, _size: int) -> ScenarioIndex:
    path = Path(path_str)
    data = _read_json(path)
    _check_schema(data, "schema", INDEX_SCHEMA, path)
    variants = _field(data, "variants", list, path)
    if not all(isinstance(v, str) and v for v in variants):
        raise EvidenceSchemaError(f"{path}: 'variants' must be a list of names", path)
    return ScenarioIndex(
        scenario=_field(data, "scenario", str, path),
        title=_optional(data, "title", str, path) or "",
        variants=tuple(variants),
    )


def load_run(variant_dir: Path) -> RunInfo:
    """Read `<variant>/run.json`."""
    return _load_run(*_stat_key(variant_dir / RUN_FILE))


@functools.lru_cache(maxsize=256)
def _load_run(path_str: str, _mtime: int, _size: int) -> RunInfo:
    path = Path(path_str)
    data = _read_json(path)
    _check_schema(data, "schema", RUN_SCHEMA, path)
    packages = _optional(data, "packages", dict, path) or {}
    server = _optional(data, "server", dict, path) or {}
    requirements = _optional(data, "requirements", list, path) or []
    if not all(isinstance(r, str) for r in requirements):
        raise EvidenceSchemaError(f"{path}: 'requirements' must be a list of strings", path)
    code_files = _optional(data, "code_files", list, path) or []
    if not all(isinstance(f, str) for f in code_files):
        raise EvidenceSchemaError(f"{path}: 'code_files' must be a list of paths", path)
    ttv = _optional(data, "time_to_verdict", (int, float), path)
    return RunInfo(
        variant=_field(data, "variant", str, path),
        scenario=_optional(data, "scenario", str, path) or "",
        python=_optional(data, "python", str, path) or "",
        requirements=tuple(requirements),
        packages={str(k): str(v) for k, v in packages.items()},
        server_name=_optional(server, "name", str, path),
        server_version=_optional(server, "version", str, path),
        gateway=bool(server.get("gateway", False)),
        verdict=_field(data, "verdict", str, path),
        expected=_optional(data, "expected", str, path),
        time_to_verdict=None if ttv is None else float(ttv),
        captured_at=_timestamp(
            _optional(data, "finished_at", str, path) or _optional(data, "started_at", str, path),
            path,
        ),
        code_hash=_optional(data, "code_hash", str, path),
        code_files=tuple(code_files),
        refresh=_optional(data, "refresh", str, path) or "make repro",
    )


def load_trace(variant_dir: Path) -> Trace:
    """Read `<variant>/trace.html` (sanitized again here) and its JSON twin."""
    return _load_trace(
        _stat_key(variant_dir / TRACE_HTML_FILE), _stat_key(variant_dir / TRACE_JSON_FILE)
    )


@functools.lru_cache(maxsize=64)
def _load_trace(html_key: tuple[str, int, int], json_key: tuple[str, int, int]) -> Trace:
    html = sanitize_trace_html(_read_text(Path(html_key[0])))
    json_path = Path(json_key[0])
    stacks = _read_json(json_path)
    _check_schema(stacks, "format", STACKS_FORMAT, json_path)
    return Trace(html=html, text=render_stacks_text(stacks, json_path))


def render_stacks_text(stacks: Mapping[str, Any], path: Path) -> str:
    """The stacks as a Python-traceback-like listing, for builders without HTML."""
    lines: list[str] = []
    for group in ("threads", "greenlets"):
        entries = _optional(stacks, group, list, path) or []
        for entry in entries:
            if not isinstance(entry, dict):
                raise EvidenceSchemaError(f"{path}: {group} entries must be objects", path)
            flags = [flag for flag in ("main", "daemon", "tracer") if entry.get(flag)]
            kind = str(entry.get("kind", group.rstrip("s"))).capitalize()
            title = f"{kind} {entry.get('name', '?')}"
            lines.append(title + (f" ({', '.join(flags)})" if flags else ""))
            frames = _optional(entry, "frames", list, path) or []
            if not frames:
                lines.append("  (no frames)")
            for frame in frames:
                if not isinstance(frame, dict):
                    raise EvidenceSchemaError(f"{path}: frames must be objects", path)
                lines.append(
                    f'  File "{frame.get("file", "?")}", line {frame.get("line", "?")}, '
                    f"in {frame.get('function', '?')}"
                )
                source = frame.get("source")
                if isinstance(source, str) and source.strip():
                    lines.append(f"    {source.strip()}")
            lines.append("")
    return "\n".join(lines).rstrip("\n")


def is_stale(run: RunInfo, root: Path) -> bool:
    """True when the code that produced `run` has changed under `root` since."""
    if run.code_hash is None or not run.code_files:
        return False
    return code_hash(root, run.code_files) != run.code_hash
