from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reprokit.bisect import release_variants, select_releases, summarize
from reprokit.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent


def test_only_final_releases_in_the_inclusive_range_oldest_first() -> None:
    index = ["0.5", "0.4.1", "0.4", "0.3.4", "0.4rc1", "0.2", "0.6.dev1", "junk"]
    assert select_releases(index, "0.3.4", "0.5") == ["0.3.4", "0.4", "0.4.1", "0.5"]


def test_each_release_gets_the_pins_its_rules_give_it() -> None:
    matrix = load_matrix(ROOT / "code" / "matrix.toml")
    old, declared, new = release_variants(matrix, "motor", ["0.3.4", "0.4", "0.5"])
    assert "pymongo==2.7.1" in old.requirements and "motor==0.3.4" in old.requirements
    assert declared == next(v for v in matrix.variants if v.name == "motor-0.4")
    assert "pymongo==2.8" in new.requirements and new.expect == ""


def test_summary_names_the_boundaries_and_unknowns() -> None:
    lines = summarize(
        "motor", [("0.3.4", "ok"), ("0.4", "deadlock"), ("0.4.1", "ok"), ("0.5", None)]
    )
    assert lines == [
        "bad releases of motor: 0.4",
        "first bad: 0.4 (after 0.3.4, ok)",
        "first good: 0.4.1 (after 0.4, deadlock)",
        "no verdict for: 0.5",
    ]


@pytest.mark.slow
def test_bisect_over_real_releases_names_04_as_the_only_bad_one() -> None:
    """Real releases from the index, each in its own Python 2.7 environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "reprokit", "bisect", "--from", "0.3.4", "--to", "0.4.1",
         "--cache", str(ROOT / "_build" / "envs")],
        check=False, capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bad releases of motor: 0.4\n" in proc.stdout
    assert "first bad: 0.4 (after 0.3.4, ok)" in proc.stdout
    assert "first good: 0.4.1 (after 0.4, deadlock)" in proc.stdout
