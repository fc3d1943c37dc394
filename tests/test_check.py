"""The determinism check, on the real variants (a short N; `make repro-check` uses 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_variant_gives_its_expected_verdict_every_time() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reprokit", "check", "--runs", "3",
         "--cache", str(ROOT / "_build" / "envs")],
        check=False, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split() == ["motor-0.4", "deadlock", "deadlock", "3/3", "ok"] for line in lines)
    assert any(line.split() == ["motor-0.4.1", "ok", "ok", "3/3", "ok"] for line in lines)
    assert "check: 6 run(s)" in proc.stdout


def test_a_wrong_run_count_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reprokit", "check", "--runs", "0"],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "error: --runs must be at least 1" in proc.stderr
