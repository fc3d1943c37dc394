# Turning what a run observed into a verdict. Pure: the watchdog gathers the
# facts (the load's outcome and the stacks captured at the stall), this module
# only judges them, so every rule is testable with plain data.
#
#   error    the app died, never became ready, or answered something unexpected
#   ok       every request of every load step was answered as expected
#   deadlock requests stalled and the main thread's innermost frame is blocked
#            on a line matching the scenario's `blocked_on` pattern
#   hang     requests stalled any other way (or no stacks could be captured)
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What the watchdog saw. `stalled` means outstanding requests made no progress."""

    sent: int
    answered: int
    failures: tuple[str, ...] = ()  # one line per unexpected answer
    stalled: bool = False
    app_exit: int | None = None  # exit status if the app died during the run
    startup_error: str | None = None


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def main_thread(stacks: dict[str, Any] | None) -> dict[str, Any] | None:
    if not stacks:
        return None
    for thread in stacks.get("threads", []):
        if thread.get("main"):
            return thread  # type: ignore[no-any-return]
    return None


def innermost(thread: dict[str, Any] | None) -> dict[str, Any] | None:
    if not thread or not thread.get("frames"):
        return None
    return thread["frames"][-1]  # type: ignore[no-any-return]


def describe_frame(frame: dict[str, Any]) -> str:
    source = (frame.get("source") or "").strip()
    where = f"{frame.get('file')}:{frame.get('line')} in {frame.get('function')}"
    return f"{where}: {source}" if source else where


def classify(outcome: Outcome, stacks: dict[str, Any] | None, blocked_on: str) -> Verdict:
    if outcome.startup_error is not None:
        return Verdict("error", f"the app did not start: {outcome.startup_error}")
    if outcome.app_exit is not None:
        return Verdict("error", f"the app exited with status {outcome.app_exit} during the load")
    if outcome.failures:
        more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
        return Verdict("error", f"unexpected answer: {outcome.failures[0]}{more}")
    if not outcome.stalled:
        if outcome.answered == outcome.sent:
            return Verdict("ok", f"all {outcome.sent} requests answered as expected")
        return Verdict("error", f"only {outcome.answered} of {outcome.sent} requests answered")
    pending = outcome.sent - outcome.answered
    frame = innermost(main_thread(stacks))
    if frame is None:
        return Verdict(
            "hang", f"{pending} requests stalled and no stack of the main thread was captured"
        )
    if re.search(blocked_on, frame.get("source") or ""):
        return Verdict(
            "deadlock",
            f"{pending} of {outcome.sent} requests stalled; the main thread is blocked at "
            f"{describe_frame(frame)}",
        )
    return Verdict(
        "hang",
        f"{pending} of {outcome.sent} requests stalled; the main thread is at "
        f"{describe_frame(frame)}",
    )
