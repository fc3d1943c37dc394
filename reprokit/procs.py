# Child processes that are always reaped.
#
# Every child starts in its own session (so its own process group): the app
# under test forks nothing today, but pip, virtualenv and the server stack do,
# and a group signal reaches all of them. Stopping escalates interrupt ->
# terminate -> kill, each step with its own timeout, and finishes with a
# SIGKILL to the whole group so no grandchild outlives its parent. Live
# children are kept in a module registry so a signal handler or atexit can
# stop whatever is still running.
from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from reprokit.errors import ReproError

log = logging.getLogger(__name__)

_live: set[subprocess.Popen[Any]] = set()
_live_lock = threading.Lock()
_cancelled = threading.Event()
last_signal: int | None = None  # the signal that interrupted the run, if any


class Cancelled(ReproError):
    """The run was interrupted (Ctrl-C or SIGTERM); no new child may start."""


def cancel() -> None:
    """Refuse every later spawn: set when the user interrupts a run."""
    _cancelled.set()


def cancelled() -> bool:
    return _cancelled.is_set()


def check_cancelled() -> None:
    if _cancelled.is_set():
        raise Cancelled("interrupted")


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start a child in a new process group and remember it until it is reaped."""
    with _live_lock:
        check_cancelled()
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            text=text,
        )
        _live.add(proc)
    return proc


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def shutdown(
    proc: subprocess.Popen[Any],
    *,
    interrupt_timeout: float = 2.0,
    terminate_timeout: float = 2.0,
    kill_timeout: float = 5.0,
) -> int | None:
    """Stop a child and its whole process group; return its exit status.

    A timeout of 0 skips that step (e.g. interrupt_timeout=0 for a process that
    is known to be hung, where SIGINT would only cost time).
    """
    try:
        steps = (
            (signal.SIGINT, interrupt_timeout),
            (signal.SIGTERM, terminate_timeout),
            (signal.SIGKILL, kill_timeout),
        )
        for sig, timeout in steps:
            if proc.poll() is not None:
                break
            if timeout <= 0 and sig != signal.SIGKILL:
                continue
            _signal_group(proc, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.debug("pid %d did not exit within %.1fs of %s", proc.pid, timeout, sig.name)
        # The leader may be gone while children it forked still run.
        _signal_group(proc, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=kill_timeout)
        return proc.returncode
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        with _live_lock:
            _live.discard(proc)


def forget(proc: subprocess.Popen[Any]) -> None:
    """Drop a child that exited by itself (after wait()) from the registry."""
    _signal_group(proc, signal.SIGKILL)
    with _live_lock:
        _live.discard(proc)


def shutdown_all() -> None:
    """Stop every child still alive: used on Ctrl-C, SIGTERM and at exit."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        shutdown(proc, interrupt_timeout=0.5, terminate_timeout=1.0)


atexit.register(shutdown_all)


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 15) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run a child to completion with a deadline; it is reaped whatever happens."""
    proc = spawn(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        shutdown(proc, interrupt_timeout=0.5, terminate_timeout=1.0)
        out, err = "", ""
    finally:
        shutdown(proc, interrupt_timeout=0, terminate_timeout=0)
    return Completed(
        argv=tuple(os.fspath(a) for a in argv),
        returncode=proc.returncode,
        stdout=out or "",
        stderr=err or "",
        timed_out=timed_out,
    )


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM: refuse new children at once, then raise KeyboardInterrupt
    in the main thread so `finally` blocks clean up on both."""

    def _interrupt(signum: int, frame: object) -> None:
        global last_signal
        last_signal = signum
        cancel()
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
