# One isolated virtualenv per variant, cached by what determines its contents.
#
# The key is a hash of the interpreter (full version and path) and the sorted
# pins. An environment directory is usable only once its `env.json` record
# exists: the record is written last, atomically, after pip succeeded, so a
# build that failed or was interrupted leaves a directory without one, and the
# next build removes it and starts over. A file lock per key lets parallel runs
# (and parallel tests) share the cache. pip's download cache is shared by all
# environments. When a variant's pins change, the new key gets a new directory
# and the variant's older directories are pruned once the new one is complete.
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reprokit import procs
from reprokit.artifacts import dumps, write_atomic
from reprokit.errors import EnvironmentBuildError
from reprokit.interpreters import Interpreter, find_interpreter

RECORD = "env.json"
RECORD_SCHEMA = "reprokit.env/1"
PIP_TIMEOUT = 900.0
VENV_TIMEOUT = 180.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EnvSpec:
    name: str
    python: str  # MAJOR.MINOR
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Env:
    name: str
    path: Path
    python: Path
    python_version: str
    packages: dict[str, str] = field(hash=False)
    key: str
    reused: bool
    seconds: float

    @property
    def bin(self) -> Path:
        return self.python.parent


def env_key(interp: Interpreter, requirements: tuple[str, ...]) -> str:
    payload = json.dumps(
        {
            "python": interp.version,
            "executable": str(interp.executable),
            "requirements": sorted(r.strip() for r in requirements),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        record = json.loads((path / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        return None
    return record


def _env_python(path: Path) -> Path:
    return path / "bin" / "python"


def _freeze(python: Path) -> dict[str, str]:
    # `pip list --format=json` exists in every pip that supports Python 2.7 here.
    result = procs.run(
        [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        timeout=120,
        env=_pip_env(None),
    )
    if not result.ok:
        raise EnvironmentBuildError(f"could not list the packages of {python}:\n{result.tail()}")
    text = result.stdout.strip().splitlines()
    data = json.loads(text[-1]) if text else []
    return {item["name"].lower(): item["version"] for item in data}


def _pip_env(cache_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    if cache_dir is not None:
        env["PIP_CACHE_DIR"] = str(cache_dir)
    return env


def _explain_pip_failure(spec: EnvSpec, tail: str) -> str:
    for line in tail.splitlines():
        if "No matching distribution found for" in line:
            wanted = line.split("for", 1)[1].strip()
            return (
                f"variant {spec.name!r}: no release matches the pin {wanted!r} "
                f"for Python {spec.python}"
            )
    return f"variant {spec.name!r}: pip could not install its pins"


def ensure_env(
    spec: EnvSpec,
    cache_root: Path,
    *,
    progress: Progress | None = None,
) -> Env:
    """Return the variant's environment, building it only if it is not cached."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    interp = find_interpreter(spec.python)
    cache_root = cache_root.resolve()
    key = env_key(interp, spec.requirements)
    path = cache_root / f"{spec.name}-{key}"
    with _locked(cache_root / ".locks" / f"{spec.name}-{key}.lock"):
        record = _read_record(path)
        reused = record is not None and _env_python(path).exists()
        if record is None or not reused:
            _build(spec, interp, path, cache_root, say)
            record = _read_record(path)
            if record is None:
                raise EnvironmentBuildError(
                    f"variant {spec.name!r}: {path / RECORD} was not written"
                )
            _prune_siblings(spec.name, path, cache_root)
    packages = record.get("packages", {})
    return Env(
        name=spec.name,
        path=path,
        python=_env_python(path),
        python_version=str(record.get("python_version", interp.version)),
        packages=dict(packages) if isinstance(packages, dict) else {},
        key=key,
        reused=reused,
        seconds=time.monotonic() - started,
    )


def _build(spec: EnvSpec, interp: Interpreter, path: Path, cache_root: Path, say: Progress) -> None:
    if path.exists():
        shutil.rmtree(path)
    pip_cache = cache_root / "pip-cache"
    pip_cache.mkdir(parents=True, exist_ok=True)
    say(f"creating virtualenv (Python {interp.version})")
    try:
        created = procs.run(
            [
                sys.executable,
                "-m",
                "virtualenv",
                "--quiet",
                "--no-periodic-update",
                "-p",
                str(interp.executable),
                str(path),
            ],
            timeout=VENV_TIMEOUT,
            env=_pip_env(pip_cache),
        )
        if not created.ok:
            raise EnvironmentBuildError(
                f"variant {spec.name!r}: virtualenv could not create an environment with "
                f"{interp.executable}:\n{created.tail()}",
                tip="virtualenv releases before 20.22 are needed for Python 2.7",
            )
        say(f"installing {len(spec.requirements)} pins")
        installed = procs.run(
            [_env_python(path), "-m", "pip", "install", "--no-input", *spec.requirements],
            timeout=PIP_TIMEOUT,
            env=_pip_env(pip_cache),
        )
        if installed.timed_out:
            raise EnvironmentBuildError(
                f"variant {spec.name!r}: pip did not finish within {PIP_TIMEOUT:.0f}s"
            )
        if not installed.ok:
            raise EnvironmentBuildError(
                _explain_pip_failure(spec, installed.tail(40)) + ":\n" + installed.tail(),
                tip="check the pins in the matrix file (`pip index versions NAME` lists releases)",
            )
        packages = _freeze(_env_python(path))
        write_atomic(
            path / RECORD,
            dumps(
                {
                    "schema": RECORD_SCHEMA,
                    "name": spec.name,
                    "python_version": interp.version,
                    "interpreter": str(interp.executable),
                    "requirements": list(spec.requirements),
                    "packages": packages,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ),
        )
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _prune_siblings(name: str, keep: Path, cache_root: Path) -> None:
    prefix = name + "-"
    for entry in cache_root.iterdir():
        if entry == keep or not entry.is_dir() or not entry.name.startswith(prefix):
            continue
        suffix = entry.name[len(prefix) :]
        if len(suffix) == 16 and all(c in "0123456789abcdef" for c in suffix):
            shutil.rmtree(entry, ignore_errors=True)
