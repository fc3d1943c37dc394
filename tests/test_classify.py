from __future__ import annotations

from typing import Any

import pytest

from reprokit.classify import Outcome, classify

BLOCKED = r"\.acquire\("


def stacks(source: str, main: bool = True) -> dict[str, Any]:
    frame = {"file": "m.py", "line": 1087, "function": "__ensure_monitor", "source": source}
    return {"threads": [{"name": "MainThread", "main": main, "frames": [{"file": "a.py", "line": 1, "function": "<module>", "source": "main()"}, frame]}]}


@pytest.mark.parametrize(
    ("outcome", "captured", "verdict", "says"),
    [
        (Outcome(sent=8, answered=8), stacks("poll()"), "ok", "all 8 requests"),
        (Outcome(sent=8, answered=0, stalled=True), stacks("self.__monitor_lock.acquire()"), "deadlock", "m.py:1087 in __ensure_monitor"),
        (Outcome(sent=8, answered=3, stalled=True), stacks("while True: pass"), "hang", "5 of 8 requests stalled"),
        (Outcome(sent=8, answered=0, stalled=True), None, "hang", "no stack of the main thread"),
        (Outcome(sent=8, answered=0, stalled=True), stacks("lock.acquire()", main=False), "hang", "no stack"),
        (Outcome(sent=8, answered=8, failures=("GET / answered 500",)), None, "error", "GET / answered 500"),
        (Outcome(sent=8, answered=2, app_exit=1), None, "error", "exited with status 1"),
        (Outcome(sent=0, answered=0, startup_error="it exited"), None, "error", "did not start"),
        (Outcome(sent=8, answered=7), None, "error", "only 7 of 8"),
    ],
)
def test_verdicts(outcome: Outcome, captured: Any, verdict: str, says: str) -> None:
    result = classify(outcome, captured, BLOCKED)
    assert result.verdict == verdict
    assert says in result.reason


def test_the_pattern_comes_from_the_scenario() -> None:
    spinning = Outcome(sent=2, answered=0, stalled=True)
    assert classify(spinning, stacks("x += 1"), r"x \+= 1").verdict == "deadlock"
