"""The real pipeline, end to end: real Python 2.7 environments with the real
Motor releases, a real SecantusDB behind the legacy gateway, the real app under
load, and the evidence it stores. Nothing is mocked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from reprokit.interpreters import pyenv_root

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "code" / "matrix.toml"
CACHE = ROOT / "_build" / "envs"

pytestmark = pytest.mark.slow


# Every process the pipeline starts inherits this variable, so the test can
# find any that outlived the run, and only those.
TOKEN = f"reprokit-test-{uuid.uuid4().hex}"


def repro(
    evidence: Path, *extra: str, matrix: Path = MATRIX, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI; its temp dirs go to `tmp` (default: beside the evidence)."""
    tmp = tmp or evidence.parent / "run-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "reprokit", "repro", "--matrix", str(matrix),
         "--cache", str(CACHE), "--evidence", str(evidence), *extra],
        check=False, capture_output=True, text=True, timeout=900, cwd=ROOT,
        env={**os.environ, "REPROKIT_TEST_TOKEN": TOKEN, "TMPDIR": str(tmp)},
    )  # fmt: skip


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def main_thread(stacks: dict[str, Any]) -> dict[str, Any]:
    (thread,) = [t for t in stacks["threads"] if t["main"]]
    return thread


def survivors() -> list[str]:
    """Command lines of live processes started by a repro run of this test."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if TOKEN.encode() in environ:
            found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "evidence"
    result = repro(out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_motor_04_deadlocks_with_the_lock_holder_shown(evidence: Path) -> None:
    run = load(evidence / "motor-0.4" / "run.json")
    assert run["verdict"] == run["expected"] == "deadlock"
    assert run["packages"]["motor"] == "0.4" and run["packages"]["pymongo"] == "2.8"
    assert run["python"].startswith("2.7.")
    assert run["requests"]["answered"] == 0 and run["requests"]["sent"] >= 2
    stacks = load(evidence / "motor-0.4" / "trace.json")
    innermost = main_thread(stacks)["frames"][-1]
    assert innermost["function"] == "__ensure_monitor"
    assert innermost["source"].strip() == "self.__monitor_lock.acquire()"
    assert innermost["file"].endswith("pymongo/mongo_replica_set_client.py")
    suspended = [
        g for g in stacks["greenlets"] if any(f["function"] == "start_sync" for f in g["frames"])
    ]
    assert suspended, "no greenlet is shown suspended inside Monitor.start_sync"
    functions = [f["function"] for f in suspended[0]["frames"]]
    assert functions.index("__ensure_monitor") < functions.index("start_sync")
    # Evidence followed the stall within about a second.
    assert run["time_to_evidence"] < 1.0
    html = (evidence / "motor-0.4" / "trace.html").read_text()
    assert "__monitor_lock" in html and "start_sync" in html
    assert 'style="' in html


def test_motor_041_answers_everything_and_reads_the_seeded_documents(evidence: Path) -> None:
    run = load(evidence / "motor-0.4.1" / "run.json")
    assert run["verdict"] == run["expected"] == "ok"
    assert run["packages"]["motor"] == "0.4.1"
    assert run["requests"]["answered"] == run["requests"]["sent"] == 11
    # Every request was checked against the matrix's expectations: "done" with
    # X-Doc-Counts 150,150 (the seeded documents, read back through the
    # gateway with OP_GET_MORE), and 250,250 after the insert route.
    matrix_text = MATRIX.read_text()
    assert '"X-Doc-Counts" = "150,150"' in matrix_text
    assert '"X-Doc-Counts" = "250,250"' in matrix_text
    assert run["server"]["gateway"] is True and run["server"]["name"] == "SecantusDB"
    stacks = load(evidence / "motor-0.4.1" / "trace.json")
    innermost = main_thread(stacks)["frames"][-1]
    assert re.search(r"poll|select", innermost["source"]), innermost


def test_evidence_carries_no_local_paths(evidence: Path) -> None:
    forbidden = [str(ROOT), str(Path.home())]
    root = pyenv_root()
    if root is not None:
        forbidden.append(str(root))
    for path in evidence.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for prefix in forbidden:
                assert prefix not in text, f"{prefix} leaked into {path}"
    trace = (evidence / "motor-0.4" / "trace.json").read_text()
    assert '"<site-packages>/pymongo/mongo_replica_set_client.py"' in trace


def test_the_index_lists_variants_in_matrix_order(evidence: Path) -> None:
    index = load(evidence / "index.json")
    assert index["variants"] == ["motor-0.4", "motor-0.4.1"]
    assert index["scenario"] == "motor-66"


def test_nothing_is_left_running(evidence: Path) -> None:
    assert survivors() == []
    assert list((evidence.parent / "run-tmp").iterdir()) == []


def test_an_unexpected_verdict_fails_and_keeps_the_previous_evidence(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    (evidence / "motor-0.4").mkdir(parents=True)
    (evidence / "motor-0.4" / "run.json").write_text('{"previous": true}\n')
    before = (evidence / "motor-0.4" / "run.json").read_bytes()
    wrong = tmp_path / "code" / "matrix.toml"
    wrong.parent.mkdir()
    text = MATRIX.read_text().replace('expect = "deadlock"', 'expect = "ok"')
    text = text.replace('app = "app.py"', f'app = "{MATRIX.parent / "app.py"}"')
    text = text.replace('code = ["app.py", "stacktracer.py", "matrix.toml"]', 'code = ["matrix.toml"]')
    wrong.write_text(text)
    result = repro(evidence, "--variants", "motor-0.4", matrix=wrong)
    assert result.returncode == 1
    assert "motor-0.4: expected ok, saw deadlock" in result.stderr
    assert "previous evidence was kept" in result.stderr
    assert (evidence / "motor-0.4" / "run.json").read_bytes() == before
    assert sorted(p.name for p in evidence.iterdir()) == ["motor-0.4"]
