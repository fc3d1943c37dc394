from __future__ import annotations

import os
from pathlib import Path

import pytest

from reprokit import artifacts
from reprokit.codehash import code_hash


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_store_replaces_the_whole_variant_directory(tmp_path: Path) -> None:
    artifacts.store_variant(tmp_path, "v", {"a.json": b"1", "old.svg": b"x"})
    artifacts.store_variant(tmp_path, "v", {"a.json": b"2"})
    assert snapshot(tmp_path) == {"v/a.json": b"2"}


def test_a_failing_store_leaves_the_previous_evidence_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts.store_variant(tmp_path, "v", {"trace.html": b"<pre>old</pre>", "run.json": b"{}"})
    before = snapshot(tmp_path)
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        # Simulates a crash (disk full, Ctrl-C) at the moment the new
        # directory would take the old one's place.
        if str(src).endswith(tuple("0123456789abcdef")) and ".staging-" in str(src):
            raise KeyboardInterrupt
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        artifacts.store_variant(tmp_path, "v", {"trace.html": b"new"})
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_an_interrupted_swap_is_recovered(tmp_path: Path) -> None:
    artifacts.store_variant(tmp_path, "v", {"run.json": b"kept"})
    os.replace(tmp_path / "v", tmp_path / ".old-v-deadbeef")  # crash between the renames
    artifacts.store_variant(tmp_path, "w", {"run.json": b"other"})
    artifacts._recover(tmp_path, "v")
    assert (tmp_path / "v" / "run.json").read_bytes() == b"kept"


def test_code_hash_follows_content_not_line_endings(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_bytes(b"a = 1\n")
    first = code_hash(tmp_path, ["code/app.py"])
    (tmp_path / "code" / "app.py").write_bytes(b"a = 1\r\n")
    assert code_hash(tmp_path, ["code/app.py"]) == first
    (tmp_path / "code" / "app.py").write_bytes(b"a = 2\n")
    assert code_hash(tmp_path, ["code/app.py"]) != first
    assert code_hash(tmp_path, ["code/gone.py"]) != code_hash(tmp_path, [])


def test_project_root_is_where_conf_py_is(tmp_path: Path) -> None:
    (tmp_path / "conf.py").write_text("")
    (tmp_path / "code").mkdir()
    assert artifacts.project_root(tmp_path / "code") == tmp_path
