"""`reprokit publish` against a real bare repository in tmp_path, with real git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprokit.errors import PublishError
from reprokit.publish import Plan, compare, describe, publish

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=GIT_ENV, check=True
    )
    return proc.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """A bare 'origin', a clone with one commit on main and a dirty file, and a site."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(origin), str(work))
    git(work, "checkout", "--quiet", "-b", "main")
    (work / "README.md").write_text("hello\n")
    git(work, "add", "README.md")
    git(work, "commit", "--quiet", "-m", "init")
    git(work, "push", "--quiet", "origin", "main")
    (work / "README.md").write_text("hello, uncommitted edit\n")  # must survive publishing
    (work / "untracked.txt").write_text("left alone\n")
    site = work / "_build" / "html"
    (site / "posts").mkdir(parents=True)
    (site / "index.html").write_text("<html>index</html>\n")
    (site / "posts" / "a.html").write_text("<html>a</html>\n")
    (site / ".buildinfo").write_text("config: x\n")
    (site / ".doctrees").mkdir()
    (site / ".doctrees" / "env.pickle").write_bytes(b"\x80\x04")
    return {"origin": origin, "work": work, "site": site}


def snapshot(work: Path) -> tuple[str, str, str]:
    return (
        git(work, "rev-parse", "HEAD"),
        git(work, "symbolic-ref", "HEAD"),
        git(work, "status", "--porcelain", "--untracked-files=all"),
    )


def branch_files(origin: Path, branch: str = "gh-pages") -> list[str]:
    return sorted(git(origin, "ls-tree", "-r", "--name-only", branch).splitlines())


def test_compare_table() -> None:
    old = {"a": "1", "b": "2", "c": "3"}
    new = {"a": "1", "b": "9", "d": "4"}
    assert compare(old, new) == Plan(added=("d",), changed=("b",), removed=("c",))
    assert compare(old, old).empty
    assert compare({}, {"x": "1"}) == Plan(added=("x",))


def test_first_publish_then_no_change_then_change(project: dict[str, Path]) -> None:
    work, origin, site = project["work"], project["origin"], project["site"]
    before = snapshot(work)

    first = publish(site, work, env=GIT_ENV, message="first")
    assert first.pushed and first.commit and first.parent is None
    assert set(first.plan.added) == {".nojekyll", "index.html", "posts/a.html"}
    assert branch_files(origin) == [".nojekyll", "index.html", "posts/a.html"]
    assert git(origin, "rev-parse", "gh-pages") == first.commit
    assert git(origin, "show", "gh-pages:posts/a.html") == "<html>a</html>"
    assert git(origin, "log", "--format=%s", "gh-pages") == "first"
    assert snapshot(work) == before  # working tree, index, HEAD and branch untouched
    assert git(work, "branch", "--list", "gh-pages") == ""  # no local branch created

    second = publish(site, work, env=GIT_ENV, message="second")
    assert second.plan.empty and second.commit is None and not second.pushed
    assert git(origin, "rev-list", "--count", "gh-pages") == "1"  # no new commit
    assert "up to date" in describe(second, dry_run=False)[-1]

    (site / "posts" / "a.html").write_text("<html>a, edited</html>\n")
    (site / "posts" / "b.html").write_text("<html>b</html>\n")
    (site / "index.html").unlink()
    (site / "index.html").write_text("<html>index</html>\n")  # same content: not "changed"
    dry = publish(site, work, env=GIT_ENV, dry_run=True)
    assert dry.plan == Plan(added=("posts/b.html",), changed=("posts/a.html",))
    assert dry.commit is None
    assert git(origin, "rev-list", "--count", "gh-pages") == "1"  # dry run pushed nothing
    lines = describe(dry, dry_run=True)
    assert "  A posts/b.html" in lines and "  M posts/a.html" in lines
    assert lines[-1].startswith("publish (dry run): would commit")

    (site / "posts" / "b.html").unlink()
    third = publish(site, work, env=GIT_ENV, message="third")
    assert third.plan == Plan(changed=("posts/a.html",))
    assert third.parent == first.commit
    assert git(origin, "rev-list", "--count", "gh-pages") == "2"
    assert git(origin, "rev-parse", "gh-pages^") == first.commit  # a fast-forward
    assert snapshot(work) == before


def test_removed_file_and_custom_branch_and_remote_url(project: dict[str, Path]) -> None:
    work, origin, site = project["work"], project["origin"], project["site"]
    publish(site, work, remote=str(origin), branch="site", env=GIT_ENV)
    (site / "posts" / "a.html").unlink()
    result = publish(site, work, remote=str(origin), branch="site", env=GIT_ENV)
    assert result.plan == Plan(removed=("posts/a.html",))
    assert branch_files(origin, "site") == [".nojekyll", "index.html"]
    assert git(origin, "branch", "--list", "gh-pages") == ""


def test_placeholder_base_url_warns(project: dict[str, Path]) -> None:
    site = project["site"]
    (site / "index.html").write_text('<link rel="canonical" href="https://blog.example.org/">')
    result = publish(site, project["work"], env=GIT_ENV, dry_run=True)
    assert any("SITE_URL" in warning for warning in result.warnings)


@pytest.mark.parametrize(
    ("case", "tip"),
    [("no-site", "make html"), ("bad-remote", "--remote"), ("not-a-repo", "project")],
)
def test_errors_are_clear(project: dict[str, Path], tmp_path: Path, case: str, tip: str) -> None:
    site, work = project["site"], project["work"]
    kwargs: dict[str, str] = {}
    if case == "no-site":
        site = tmp_path / "missing"
    elif case == "bad-remote":
        kwargs["remote"] = "nosuchremote"
    else:
        work = tmp_path / "elsewhere"
        work.mkdir()
    with pytest.raises(PublishError) as info:
        publish(site, work, env=GIT_ENV, **kwargs)
    assert tip in (info.value.tip or "")


def test_cli_dry_run_and_publish(project: dict[str, Path]) -> None:
    work, origin = project["work"], project["origin"]
    root = Path(__file__).resolve().parents[1]
    env = {**GIT_ENV, "PYTHONPATH": str(root)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reprokit", "publish", *args],
            cwd=work,
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "  A index.html" in dry.stdout and "would commit" in dry.stdout
    assert git(origin, "branch", "--list", "gh-pages") == ""

    real = cli("--remote", "origin", "--branch", "gh-pages")
    assert real.returncode == 0, real.stderr
    assert "pushed" in real.stdout
    assert branch_files(origin) == [".nojekyll", "index.html", "posts/a.html"]

    again = cli()
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert git(origin, "rev-list", "--count", "gh-pages") == "1"

    bad = cli("--remote", "nosuchremote")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: cannot reach the git remote")
    assert "tip:" in bad.stderr
