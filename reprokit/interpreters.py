# Finding a Python interpreter by version, without hard-coded paths.
#
# Candidates come from, in order: the REPROKIT_PYTHON_<MAJOR>_<MINOR> variable
# (an explicit override), PATH (`python2.7`, `python3.6`, ...) and the versions
# installed under `pyenv root`. Each candidate is asked for its real version and
# prefix; pyenv shims are skipped because they answer for whatever version is
# selected in the current directory, not for the name they carry.
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reprokit.errors import InterpreterNotFound

_VERSION_RE = re.compile(r"^\d+\.\d+$")
_PROBE = (
    "import json, sys; "
    "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], "
    "'prefix': sys.prefix, 'executable': sys.executable}))"
)


@dataclass(frozen=True)
class Interpreter:
    version: str  # full version, e.g. "2.7.18"
    executable: Path
    prefix: Path

    @property
    def short_version(self) -> str:
        return ".".join(self.version.split(".")[:2])


def pyenv_root() -> Path | None:
    """The pyenv root, from $PYENV_ROOT or `pyenv root`, if pyenv is installed."""
    env_root = os.environ.get("PYENV_ROOT")
    if env_root and Path(env_root).is_dir():
        return Path(env_root)
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    try:
        out = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out and Path(out).is_dir() else None


def _candidates(version: str) -> list[Path]:
    found: list[Path] = []
    override = os.environ.get("REPROKIT_PYTHON_" + version.replace(".", "_"))
    if override:
        found.append(Path(override))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or "shims" in Path(directory).parts:
            continue
        exe = Path(directory, f"python{version}")
        if exe.is_file() and os.access(exe, os.X_OK):
            found.append(exe)
    root = pyenv_root()
    if root is not None:
        versions = root / "versions"
        if versions.is_dir():
            for entry in sorted(versions.iterdir(), reverse=True):
                if entry.name == version or entry.name.startswith(version + "."):
                    exe = entry / "bin" / f"python{version}"
                    if exe.is_file():
                        found.append(exe)
    return found


@cache
def probe(executable: Path) -> Interpreter | None:
    """Ask an interpreter what it is; None if it does not run."""
    try:
        proc = subprocess.run(
            [str(executable), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return Interpreter(version=info["version"], executable=executable, prefix=Path(info["prefix"]))


def find_interpreter(version: str) -> Interpreter:
    """The first working interpreter whose MAJOR.MINOR is `version`."""
    if not _VERSION_RE.match(version):
        raise InterpreterNotFound(
            f'python version {version!r} is not of the form MAJOR.MINOR (e.g. "2.7")'
        )
    for candidate in _candidates(version):
        interp = probe(candidate)
        if interp is not None and interp.short_version == version:
            return interp
    raise InterpreterNotFound(
        f"no Python {version} interpreter found on PATH or under `pyenv root`",
        tip=(
            f"install it with `pyenv install {version}` (or your system's python{version} "
            f"package), or point REPROKIT_PYTHON_{version.replace('.', '_')} at its executable"
        ),
    )
