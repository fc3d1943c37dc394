# The matrix file: one scenario (what to run, what load to apply, how a stall
# is recognised, where evidence goes) and the variants to run it under.
#
# Parsing is pure: text in, frozen dataclasses out. Every problem is a
# MatrixError naming the file and, where one can be found, the line. Paths in
# the file are relative to the file itself and are resolved here, so nothing
# downstream depends on the current directory.
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from reprokit.errors import MatrixError

VERDICTS = ("ok", "deadlock", "hang", "error")
SERVERS = ("mongodb", "none")
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([A-Za-z0-9.+!_-]+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class LoadStep:
    """One burst: `concurrency` simultaneous GETs of `path`."""

    path: str
    concurrency: int = 1
    expect_status: int = 200
    expect_body: str | None = None
    expect_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seed:
    database: str
    collections: tuple[str, ...]
    documents: int


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: Path
    args: tuple[str, ...]
    ready: str  # regex with a group named url
    server: str
    evidence: Path
    code_files: tuple[Path, ...]
    requirements: tuple[str, ...]
    load: tuple[LoadStep, ...]
    seed: Seed | None
    stall: float
    startup_timeout: float
    timeout: float
    blocked_on: str  # regex matched against the main thread's innermost source line
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Variant:
    name: str
    python: str
    requirements: tuple[str, ...]  # base pins merged with the variant's own
    expect: str
    notes: str = ""


@dataclass(frozen=True)
class BisectPins:
    """Extra pins for the releases of the bisected package that match `versions`."""

    versions: str  # a PEP 440 specifier, e.g. "<0.4"
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Bisect:
    package: str
    python: str
    pins: tuple[BisectPins, ...] = ()
    evidence: Path | None = None  # where `bisect --save` stores each release's evidence


@dataclass(frozen=True)
class Matrix:
    path: Path
    scenario: Scenario
    variants: tuple[Variant, ...] = field(default_factory=tuple)
    bisect: Bisect | None = None

    def select(self, names: list[str] | None) -> tuple[Variant, ...]:
        """The variants named (in matrix order), or all of them."""
        if not names:
            return self.variants
        known = {v.name for v in self.variants}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise MatrixError(
                f"{self.path}: no variant named {', '.join(map(repr, unknown))}; "
                f"the matrix has {', '.join(v.name for v in self.variants)}"
            )
        return tuple(v for v in self.variants if v.name in names)


def pin_name(pin: str) -> str:
    match = _PIN_RE.match(pin.strip())
    return (match.group(1) if match else pin).lower().replace("_", "-")


class _Reader:
    """Typed access to one table, with errors located in the file."""

    def __init__(
        self,
        path: Path,
        text: str,
        table: dict[str, Any],
        where: str,
        header: str | None = None,
        nth: int = 1,
    ) -> None:
        self.path, self.text, self.table, self.where = path, text, table, where
        # The table's span in the text: from its nth header to the next header.
        self.start, self.end = 0, len(text)
        if header is not None:
            found = list(re.finditer(rf"^\s*{re.escape(header)}\s*$", text, re.MULTILINE))
            if len(found) >= nth:
                self.start = found[nth - 1].end()
                following = re.compile(r"^\s*\[", re.MULTILINE).search(text, self.start)
                self.end = following.start() if following else len(text)

    def line_of(self, key: str) -> int | None:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
        match = pattern.search(self.text, self.start, self.end)
        return self.text.count("\n", 0, match.start()) + 1 if match else None

    def fail(self, key: str | None, message: str) -> MatrixError:
        line = self.line_of(key) if key else None
        location = f"{self.path}:{line}" if line else str(self.path)
        return MatrixError(f"{location}: {self.where}: {message}")

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(
                    key, f"unknown key {key!r} (known keys: {', '.join(sorted(allowed))})"
                )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(None, f"missing required key {key!r}")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.fail(key, f"{key!r} must be a number, not {value!r}")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"{key!r} must be of type {names}, not {type(value).__name__}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(item, str) for item in value):
            raise self.fail(key, f"{key!r} must be a list of strings")
        return tuple(value)

    def positive(self, key: str, default: float) -> float:
        value = float(self.get(key, (int, float), default))
        if value <= 0:
            raise self.fail(key, f"{key!r} must be greater than 0")
        return value


def _pins(reader: _Reader, key: str) -> tuple[str, ...]:
    pins = reader.strings(key, [])
    for pin in pins:
        if not _PIN_RE.match(pin.strip()):
            raise reader.fail(
                key, f'{pin!r} is not an exact pin; write NAME==VERSION (e.g. "motor==0.4")'
            )
    return pins


def _merge_pins(base: tuple[str, ...], own: tuple[str, ...]) -> tuple[str, ...]:
    merged = {pin_name(p): p.strip() for p in base}
    merged.update({pin_name(p): p.strip() for p in own})
    return tuple(merged.values())


def parse_matrix(text: str, path: Path) -> Matrix:
    """Parse matrix TOML; `path` locates errors and anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: not valid TOML: {exc}") from None
    top = _Reader(path, text, data, "top level")
    top.check_keys({"scenario", "variant", "bisect"})
    scenario_table = top.get("scenario", dict)
    base = path.parent
    scenario = _parse_scenario(
        _Reader(path, text, scenario_table, "[scenario]", "[scenario]"), base
    )
    variant_tables = top.get("variant", list, [])
    if not variant_tables:
        raise top.fail(None, "no [[variant]] tables: declare at least one variant")
    variants: list[Variant] = []
    for index, table in enumerate(variant_tables, 1):
        reader = _Reader(path, text, table, f"[[variant]] #{index}", "[[variant]]", index)
        reader.check_keys({"name", "python", "requirements", "expect", "notes"})
        name = reader.get("name", str)
        if not _NAME_RE.match(name):
            raise reader.fail("name", f"variant name {name!r} may use letters, digits, . _ -")
        if any(v.name == name for v in variants):
            raise reader.fail("name", f"variant {name!r} is declared twice")
        expect = reader.get("expect", str)
        if expect not in VERDICTS:
            raise reader.fail("expect", f"expect must be one of {', '.join(VERDICTS)}")
        python = reader.get("python", str)
        if not re.match(r"^\d+\.\d+$", python):
            raise reader.fail("python", f'python must be MAJOR.MINOR (e.g. "2.7"), not {python!r}')
        variants.append(
            Variant(
                name=name,
                python=python,
                requirements=_merge_pins(scenario.requirements, _pins(reader, "requirements")),
                expect=expect,
                notes=reader.get("notes", str, ""),
            )
        )
    bisect_table = top.get("bisect", dict, None)
    bisect = None
    if bisect_table is not None:
        bisect = _parse_bisect(_Reader(path, text, bisect_table, "[bisect]", "[bisect]"))
    return Matrix(path=path, scenario=scenario, variants=tuple(variants), bisect=bisect)


def _parse_bisect(reader: _Reader) -> Bisect:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    reader.check_keys({"package", "python", "pins", "evidence"})
    rules = []
    for index, table in enumerate(reader.get("pins", list, []), 1):
        rule = _Reader(reader.path, reader.text, table, f"[[bisect.pins]] #{index}",
                       "[[bisect.pins]]", index)  # fmt: skip
        rule.check_keys({"versions", "requirements"})
        versions = rule.get("versions", str)
        try:
            SpecifierSet(versions)
        except InvalidSpecifier:
            raise rule.fail("versions", f"{versions!r} is not a version specifier") from None
        rules.append(BisectPins(versions=versions, requirements=_pins(rule, "requirements")))
    evidence = reader.get("evidence", str, None)
    return Bisect(
        package=reader.get("package", str),
        python=reader.get("python", str, "2.7"),
        pins=tuple(rules),
        evidence=(reader.path.parent / evidence).resolve() if evidence else None,
    )


def _parse_scenario(reader: _Reader, base: Path) -> Scenario:
    reader.check_keys(
        {
            "name", "title", "app", "args", "ready", "server", "evidence", "code",
            "requirements", "load", "seed", "stall", "startup_timeout", "timeout",
            "blocked_on", "env",
        }
    )  # fmt: skip
    name = reader.get("name", str)
    if not _NAME_RE.match(name):
        raise reader.fail("name", f"scenario name {name!r} may use letters, digits, . _ -")
    server = reader.get("server", str, "none")
    if server not in SERVERS:
        raise reader.fail("server", f"server must be one of {', '.join(SERVERS)}")
    ready = reader.get("ready", str, r"Listening on (?P<url>http://\S+)")
    try:
        if "url" not in re.compile(ready).groupindex:
            raise reader.fail("ready", "the ready pattern needs a group named url: (?P<url>...)")
    except re.error as exc:
        raise reader.fail("ready", f"the ready pattern is not a valid regex: {exc}") from None
    blocked_on = reader.get("blocked_on", str, r"\.acquire\(")
    try:
        re.compile(blocked_on)
    except re.error as exc:
        raise reader.fail("blocked_on", f"not a valid regex: {exc}") from None
    app = (base / reader.get("app", str)).resolve()
    code_files = tuple((base / f).resolve() for f in reader.strings("code", [])) or (app,)
    load_tables = reader.get("load", list)
    if not load_tables:
        raise reader.fail("load", "load needs at least one step")
    steps = tuple(_parse_step(reader, table, i) for i, table in enumerate(load_tables, 1))
    seed_table = reader.get("seed", dict, None)
    seed = None
    if seed_table is not None:
        if server == "none":
            raise reader.fail("seed", 'a seed needs a server: set server = "mongodb"')
        seed_reader = _Reader(
            reader.path, reader.text, seed_table, "[scenario.seed]", "[scenario.seed]"
        )
        seed_reader.check_keys({"database", "collections", "documents"})
        documents = int(seed_reader.get("documents", int))
        if documents < 0:
            raise seed_reader.fail("documents", "documents must be 0 or more")
        seed = Seed(
            database=seed_reader.get("database", str),
            collections=seed_reader.strings("collections"),
            documents=documents,
        )
    env_table = reader.get("env", dict, {})
    if not all(isinstance(v, str) for v in env_table.values()):
        raise reader.fail("env", "env values must be strings")
    return Scenario(
        name=name,
        title=reader.get("title", str, name),
        app=app,
        args=reader.strings("args", []),
        ready=ready,
        server=server,
        evidence=(base / reader.get("evidence", str)).resolve(),
        code_files=code_files,
        requirements=_pins(reader, "requirements"),
        load=steps,
        seed=seed,
        stall=reader.positive("stall", 1.0),
        startup_timeout=reader.positive("startup_timeout", 30.0),
        timeout=reader.positive("timeout", 60.0),
        blocked_on=blocked_on,
        env=tuple(sorted(env_table.items())),
    )


def _parse_step(parent: _Reader, table: Any, index: int) -> LoadStep:
    if not isinstance(table, dict):
        raise parent.fail("load", f"load step #{index} must be a table")
    reader = _Reader(
        parent.path, parent.text, table, f"[[scenario.load]] #{index}", "[[scenario.load]]", index
    )
    reader.check_keys({"path", "concurrency", "expect_status", "expect_body", "expect_headers"})
    path = reader.get("path", str)
    if not path.startswith("/"):
        raise reader.fail("path", f"path must start with '/', not {path!r}")
    concurrency = int(reader.get("concurrency", int, 1))
    if not 1 <= concurrency <= 256:
        raise reader.fail("concurrency", "concurrency must be between 1 and 256")
    headers = reader.get("expect_headers", dict, {})
    return LoadStep(
        path=path,
        concurrency=concurrency,
        expect_status=int(reader.get("expect_status", int, 200)),
        expect_body=reader.get("expect_body", str, None),
        expect_headers=tuple(sorted((str(k), str(v)) for k, v in headers.items())),
    )


def load_matrix(path: Path) -> Matrix:
    """Read and parse a matrix file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MatrixError(
            f"matrix file {path} does not exist", tip="pass --matrix code/matrix.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MatrixError(f"cannot read matrix file {path}: {exc}") from None
    return parse_matrix(text, path.resolve())
