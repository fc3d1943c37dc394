"""Environments: real virtualenvs with the real interpreter and pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprokit import envs
from reprokit.envs import EnvSpec, ensure_env
from reprokit.errors import InterpreterNotFound
from reprokit.interpreters import find_interpreter

ROOT = Path(__file__).resolve().parent.parent
SHARED_PIP_CACHE = ROOT / "_build" / "envs" / "pip-cache"
BASE = ("six==1.16.0",)


def test_a_missing_interpreter_says_how_to_get_it() -> None:
    with pytest.raises(InterpreterNotFound) as info:
        find_interpreter("1.9")
    assert "no Python 1.9 interpreter" in str(info.value)
    assert info.value.tip and "pyenv install 1.9" in info.value.tip


def test_the_key_follows_interpreter_and_pins_not_their_order() -> None:
    interp = find_interpreter("2.7")
    assert envs.env_key(interp, ("a==1", "b==2")) == envs.env_key(interp, ("b==2", "a==1"))
    assert envs.env_key(interp, ("a==1",)) != envs.env_key(interp, ("a==2",))


@pytest.mark.slow
def test_cache_reuse_and_rebuild_of_only_the_changed_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "envs"
    cache.mkdir()
    SHARED_PIP_CACHE.mkdir(parents=True, exist_ok=True)
    (cache / "pip-cache").symlink_to(SHARED_PIP_CACHE)  # downloads are shared, as in a run
    a = EnvSpec("a", "2.7", BASE)
    b = EnvSpec("b", "2.7", (*BASE, "certifi==2020.12.5"))
    first_a, first_b = ensure_env(a, cache), ensure_env(b, cache)
    assert not first_a.reused and not first_b.reused
    assert first_b.packages["certifi"] == "2020.12.5"
    assert first_a.python_version.startswith("2.7.")

    # Warm: no pip, no virtualenv, no child process at all.
    def no_children(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a warm environment started a process: {args}")

    with monkeypatch.context() as patch:
        patch.setattr(envs.procs, "run", no_children)
        assert ensure_env(a, cache).reused and ensure_env(b, cache).reused

    # One pin changes: only that variant is rebuilt, and its old directory goes.
    b2 = EnvSpec("b", "2.7", (*BASE, "certifi==2020.11.8"))
    rebuilt = ensure_env(b2, cache)
    assert not rebuilt.reused and rebuilt.packages["certifi"] == "2020.11.8"
    assert ensure_env(a, cache).reused
    names = sorted(p.name for p in cache.iterdir() if p.name not in (".locks", "pip-cache"))
    assert names == sorted([first_a.path.name, rebuilt.path.name])


@pytest.mark.slow
def test_a_failed_build_leaves_no_half_environment(tmp_path: Path) -> None:
    cache = tmp_path / "envs"
    with pytest.raises(envs.EnvironmentBuildError) as info:
        ensure_env(EnvSpec("bad", "2.7", ("six==0.0.0",)), cache)
    assert "no release matches the pin 'six==0.0.0' for Python 2.7" in str(info.value)
    assert [p.name for p in cache.iterdir() if p.name not in (".locks", "pip-cache")] == []
