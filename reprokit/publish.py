# `reprokit publish`: put the built site (_build/html) on the gh-pages branch of
# a git remote, with a .nojekyll file, and push it.
#
# Strategy: git plumbing only, so the user's working tree, index, HEAD and
# branches are never touched. The remote branch is fetched (into FETCH_HEAD);
# the site's files are hashed into the object store and listed in a temporary
# index (GIT_INDEX_FILE), `write-tree` makes the tree and `commit-tree` a
# commit whose parent is the fetched tip; the push is then a fast-forward. The
# plan (files added/changed/removed) is computed by comparing blob ids with
# the remote tree before anything is written, so `--dry-run` writes nothing
# and an unchanged site makes no commit and no push.
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reprokit.errors import PublishError

log = logging.getLogger(__name__)

DEFAULT_SITE = Path("_build/html")
# Build byproducts that are not part of the site.
SKIP_NAMES = frozenset({".doctrees", ".buildinfo", ".buildinfo.bak"})
EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # `git hash-object /dev/null`
PLACEHOLDER_HOST = "blog.example.org"
GIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Plan:
    """What a publish changes on the branch, by site-relative path."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


@dataclass(frozen=True)
class Result:
    plan: Plan
    remote: str
    branch: str
    parent: str | None
    commit: str | None = None  # None: nothing committed (dry run or no change)
    pushed: bool = False
    files: int = 0
    warnings: tuple[str, ...] = field(default=())


def compare(old: Mapping[str, str], new: Mapping[str, str]) -> Plan:
    """The plan that turns the tree listing `old` into `new` (path -> blob id)."""
    return Plan(
        added=tuple(sorted(set(new) - set(old))),
        changed=tuple(sorted(p for p in set(new) & set(old) if new[p] != old[p])),
        removed=tuple(sorted(set(old) - set(new))),
    )


def site_files(site: Path) -> dict[str, Path]:
    """Every file of the site (site-relative POSIX path -> path), byproducts left out."""
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(site, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        for name in filenames:
            if name in SKIP_NAMES:
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(site).as_posix()
            if "\n" in rel or "\t" in rel:
                raise PublishError(
                    f"cannot publish a file whose name has a tab or newline: {rel!r}"
                )
            files[rel] = path
    return files


class Git:
    """A thin runner for git commands in one repository; failures become PublishError."""

    def __init__(self, repo: Path, env: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        self.env = dict(os.environ if env is None else env)

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**self.env, **(env or {}), "GIT_TERMINAL_PROMPT": "0"}
        try:
            proc = subprocess.run(
                ["git", *args],
                check=False,
                cwd=self.repo,
                input=stdin,
                capture_output=True,
                text=True,
                env=full_env,
                timeout=GIT_TIMEOUT,
            )
        except FileNotFoundError as exc:
            raise PublishError("git is not installed or not on PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise PublishError(
                f"git {args[0]} did not finish within {GIT_TIMEOUT:.0f} s",
                tip="check that the remote is reachable",
            ) from exc
        if check and proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise PublishError(f"git {' '.join(args[:2])} failed: {' / '.join(detail)}")
        return proc

    def out(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout.strip()


def _remote_tip(git: Git, remote: str, branch: str) -> str | None:
    listing = git.run("ls-remote", "--heads", remote, f"refs/heads/{branch}", check=False)
    if listing.returncode != 0:
        raise PublishError(
            f"cannot reach the git remote {remote!r}: {listing.stderr.strip()}",
            tip="check `git remote -v`, or pass --remote NAME_OR_URL",
        )
    if not listing.stdout.strip():
        return None
    git.out("fetch", "--quiet", "--no-tags", remote, f"refs/heads/{branch}")
    return git.out("rev-parse", "--verify", "FETCH_HEAD^{commit}")


def _tree_listing(git: Git, commit: str | None) -> dict[str, str]:
    if commit is None:
        return {}
    listing: dict[str, str] = {}
    for line in git.out("ls-tree", "-r", "-z", "--full-tree", commit).split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        listing[path] = meta.split()[2]
    return listing


def _hash_files(git: Git, files: Mapping[str, Path], write: bool) -> dict[str, str]:
    names = sorted(files)
    if not names:
        return {}
    args = ["hash-object", "--no-filters", "--stdin-paths"] + (["-w"] if write else [])
    stdin = "".join(f"{files[name].resolve()}\n" for name in names)
    ids = git.out(*args, stdin=stdin).split()
    if len(ids) != len(names):
        raise PublishError("git hash-object returned an unexpected number of ids")
    hashed = dict(zip(names, ids, strict=True))
    hashed[".nojekyll"] = EMPTY_BLOB
    return hashed


def _identity(git: Git) -> dict[str, str]:
    """Author/committer variables when the repository has no identity configured."""
    name = git.run("config", "user.name", check=False).stdout.strip()
    email = git.run("config", "user.email", check=False).stdout.strip()
    env: dict[str, str] = {}
    if not name and "GIT_AUTHOR_NAME" not in git.env:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "reprokit publish"
    if not email and "GIT_AUTHOR_EMAIL" not in git.env:
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "reprokit@localhost"
    return env


def _commit(git: Git, blobs: Mapping[str, str], parent: str | None, message: str) -> str:
    if git.run("cat-file", "-e", EMPTY_BLOB, check=False).returncode != 0:
        git.out("hash-object", "-w", "--stdin", stdin="")
    with tempfile.TemporaryDirectory(prefix="reprokit-publish-") as tmp:
        index_env = {"GIT_INDEX_FILE": str(Path(tmp, "index"))}
        entries = "".join(f"100644 {blob}\t{path}\n" for path, blob in sorted(blobs.items()))
        git.run("update-index", "--add", "--index-info", stdin=entries, env=index_env)
        tree = git.run("write-tree", env=index_env).stdout.strip()
    args = ["commit-tree", tree, "-m", message]
    if parent:
        args += ["-p", parent]
    return git.run(*args, env=_identity(git)).stdout.strip()


def _site_warnings(files: Mapping[str, Path]) -> tuple[str, ...]:
    index = files.get("index.html")
    if index is None:
        return ("the site has no index.html at its root",)
    if PLACEHOLDER_HOST in index.read_text(encoding="utf-8", errors="replace"):
        message = (
            f"the site was built with the placeholder base URL ({PLACEHOLDER_HOST}); "
            "set SITE_URL to the published address and rebuild, or canonical links, "
            "the feed and the sitemap will point there"
        )
        return (message,)
    return ()


def publish(
    site: Path,
    repo: Path,
    *,
    remote: str = "origin",
    branch: str = "gh-pages",
    dry_run: bool = False,
    message: str = "Publish site",
    env: Mapping[str, str] | None = None,
) -> Result:
    """Commit `site` to `branch` of `remote` (as seen from `repo`) and push it."""
    if not site.is_dir():
        raise PublishError(f"no built site at {site}", tip="run `make html` first")
    git = Git(repo, env)
    top = git.run("rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise PublishError(f"{repo} is not inside a git repository", tip="run from the project")
    files = site_files(site)
    if not files:
        raise PublishError(f"the site at {site} is empty", tip="run `make html` first")
    parent = _remote_tip(git, remote, branch)
    old = _tree_listing(git, parent)
    new = _hash_files(git, files, write=False)
    plan = compare(old, new)
    warnings = _site_warnings(files)
    base = Result(plan, remote, branch, parent, files=len(new), warnings=warnings)
    if dry_run or plan.empty:
        return base
    written = _hash_files(git, files, write=True)
    commit = _commit(git, written, parent, message)
    push = git.run("push", "--quiet", remote, f"{commit}:refs/heads/{branch}", check=False)
    if push.returncode != 0:
        raise PublishError(
            f"pushing to {remote} {branch} was refused: {push.stderr.strip()}",
            tip=f"someone may have pushed to {branch} meanwhile; run publish again",
        )
    return Result(
        plan, remote, branch, parent, commit=commit, pushed=True, files=len(new), warnings=warnings
    )


def describe(result: Result, dry_run: bool, limit: int = 50) -> list[str]:
    """The lines `run` prints for a result."""
    plan = result.plan
    target = f"{result.remote} {result.branch}"
    lines = [f"warning: {w}" for w in result.warnings]
    if plan.empty:
        lines.append(f"publish: {target} is up to date ({result.files} files), nothing to do")
        return lines
    for mark, paths in (("A", plan.added), ("M", plan.changed), ("D", plan.removed)):
        lines += [f"  {mark} {path}" for path in paths[:limit]]
        if len(paths) > limit:
            lines.append(f"  {mark} ... and {len(paths) - limit} more")
    counts = f"{len(plan.added)} added, {len(plan.changed)} changed, {len(plan.removed)} removed"
    if dry_run:
        lines.append(f"publish (dry run): would commit to {target}: {counts}")
    else:
        lines.append(f"publish: pushed {(result.commit or '')[:12]} to {target}: {counts}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", default="origin", help="git remote name or URL (origin)")
    parser.add_argument("--branch", default="gh-pages", help="branch to publish to (gh-pages)")
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="built site directory")
    parser.add_argument("--dry-run", action="store_true", help="only show which files would change")
    parser.add_argument("--message", default=None, help="commit message")


def _default_message(git: Git) -> str:
    head = git.run("rev-parse", "--short", "HEAD", check=False).stdout.strip()
    return f"Publish site from {head}" if head else "Publish site"


def run(args: argparse.Namespace) -> int:
    repo = Path.cwd()
    message = args.message or _default_message(Git(repo))
    result = publish(
        args.site.resolve(),
        repo,
        remote=args.remote,
        branch=args.branch,
        dry_run=args.dry_run,
        message=message,
    )
    for line in describe(result, args.dry_run):
        print(line)
    return 0


__all__: Sequence[str] = ("Plan", "Result", "compare", "describe", "publish", "site_files")
