# The shared half of the repro-* directives. A directive does no I/O: it turns
# its argument and options into a `repro_pending` node holding plain data (the
# evidence path relative to the source dir, parsed options). One read-time
# transform, ResolveEvidence, then replaces every pending node by standard
# docutils nodes built from the evidence, through the resolver its directive
# family registered. So the pickled doctree holds only standard nodes, every
# builder can write it, and nothing is read again until a dependency changes.
#
# Each evidence file read (and each code file a staleness check hashes) is
# noted as a dependency of the document: editing evidence or code/ re-reads the
# page; an unchanged tree re-reads nothing. A missing file stays a dependency,
# so the page is re-read (and warns) on every build until the file appears.
#
# Problems are warnings located at the directive, type "reprokit" and subtype
# "missing", "stale" or "schema", so `-W` fails the build and
# `suppress_warnings = ["reprokit.stale"]` can silence one kind.
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from reprokit.sphinxext import evidence

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

WARNING_TYPE = "reprokit"
_T = TypeVar("_T")


class repro_pending(nodes.General, nodes.Element):
    """Placeholder left by a repro-* directive; ResolveEvidence replaces it.

    Attributes: ``kind`` (the directive family), ``evidence`` (the evidence
    directory, relative to the source dir, POSIX separators), ``directive``
    (its name, for messages), plus the family's own options. Children, if any,
    are the parsed ``:caption:``.
    """


# A resolver returns the nodes that take the pending node's place, and the one
# among them that takes over its ids, names and classes (None: nothing to show).
Resolved = tuple[list[nodes.Node], nodes.Element | None]
Resolver = Callable[[repro_pending, "Context"], Resolved]
_RESOLVERS: dict[str, Resolver] = {}


def register_resolver(kind: str, resolver: Resolver) -> None:
    _RESOLVERS[kind] = resolver


def pending_from(
    directive: SphinxDirective, kind: str, **data: Any
) -> tuple[repro_pending, list[nodes.system_message]]:
    """The pending node for `directive`: its evidence path, caption, name and classes."""
    rel, _ = directive.env.relfn2path(directive.arguments[0])
    node = repro_pending(kind=kind, evidence=rel, directive=directive.name, **data)
    directive.set_source_info(node)
    node["classes"] += directive.options.get("class", [])
    messages: list[nodes.system_message] = []
    caption = directive.options.get("caption")
    if caption:
        inline, messages = directive.parse_inline(caption, lineno=directive.lineno)
        node += inline
    directive.add_name(node)
    return node, messages


# -- shared renderings ---------------------------------------------------------------------

_SLUG = re.compile(r"[^a-z0-9]+")


# The words the directives write around the evidence, for the site's language.
# Verdicts, package names and versions stay as the evidence has them.
_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "Variant": "版本组合",
        "Verdict": "结论",
        "Expected": "预期",
        "Server": "服务器",
        "Time to verdict": "判定用时",
        "Captured": "采集日期",
        "captured": "采集于",
        "expected": "预期",
        "via gateway": "经协议网关",
        "none": "无",
    },
}


def label(language: str | None, text: str) -> str:
    """`text` in the site's language when there is a translation, else as is."""
    return _LABELS.get((language or "en").split("_")[0].lower(), {}).get(text, text)


def verdict_badge(verdict: str, expected: str | None = None) -> nodes.inline:
    """The verdict as a word with classes for colour (readable without it too)."""
    slug = _SLUG.sub("-", verdict.lower()).strip("-") or "unknown"
    classes = ["repro-verdict", f"repro-verdict-{slug}"]
    if expected and expected != verdict:  # no expectation (a bisect run) is not a surprise
        classes.append("repro-verdict-unexpected")
    return nodes.inline(verdict, verdict, classes=classes)


def format_date(stamp: datetime | None) -> str:
    return "unknown" if stamp is None else stamp.astimezone(UTC).strftime("%Y-%m-%d")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "\u2014"
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


class Context:
    """What a resolver needs while one document is being read."""

    def __init__(self, env: BuildEnvironment, root: Path, document: nodes.document) -> None:
        self.env = env
        self.srcdir = Path(env.srcdir)
        self.root = root
        self.document = document
        self._checked_runs: set[str] = set()

    def path(self, rel: str, *names: str) -> Path:
        return self.srcdir.joinpath(rel, *names)

    def depend(self, path: Path) -> None:
        self.env.note_dependency(path)

    def warn(self, node: nodes.Node, subtype: str, message: str) -> None:
        directive = node.get("directive", "repro") if isinstance(node, nodes.Element) else "repro"
        logger.warning(
            "%s: %s", directive, message, location=node, type=WARNING_TYPE, subtype=subtype
        )

    def load(
        self,
        node: nodes.Node,
        loader: Callable[[Path], _T],
        directory: Path,
        files: Sequence[str],
    ) -> _T | None:
        """Run `loader(directory)`, noting `files` as dependencies; warn and return None on error."""
        for name in files:
            self.depend(directory / name)
        try:
            return loader(directory)
        except evidence.EvidenceError as exc:
            self.warn(node, exc.subtype, self.relative_message(exc))
            return None

    def load_run(self, node: nodes.Node, rel: str) -> evidence.RunInfo | None:
        """Load one variant's run.json and, once per document, check it is not stale."""
        run = self.load(node, evidence.load_run, self.path(rel), [evidence.RUN_FILE])
        if run is None or rel in self._checked_runs:
            return run
        self._checked_runs.add(rel)
        for code_file in run.code_files:
            self.depend(self.root / code_file)
        if evidence.is_stale(run, self.root):
            self.warn(
                node,
                "stale",
                f"the evidence of variant {run.variant!r} ({rel}) is stale: the code it "
                f"was captured from ({', '.join(run.code_files)}) has changed since; "
                f"run `{run.refresh}` to capture it again",
            )
        return run

    def relative_message(self, exc: evidence.EvidenceError) -> str:
        """The error's message with absolute paths shortened to source-relative ones."""
        message = str(exc)
        try:
            rel = exc.path.relative_to(self.srcdir).as_posix()
        except ValueError:
            return message
        return message.replace(str(exc.path), rel)

    def replace(
        self, pending: repro_pending, new: list[nodes.Node], target: nodes.Element | None
    ) -> None:
        """Put `new` where `pending` was; `target` takes over its ids, names and classes."""
        if target is not None:
            for att in ("ids", "names", "classes"):
                for value in pending[att]:
                    if value not in target[att]:
                        target[att].append(value)
            for node_id in pending["ids"]:
                self.document.ids[node_id] = target
        for att in ("ids", "names", "classes", "dupnames"):
            pending[att] = []
        if new:
            pending.replace_self(new)
        elif pending.parent is not None:
            pending.parent.remove(pending)


class ResolveEvidence(SphinxTransform):
    """Replace each repro_pending node by the nodes its resolver builds."""

    # Before Sphinx's numbering (210) so a named table gets a number, and long
    # before doctree-read (880), where the image collector copies timelines.
    default_priority = 200

    def apply(self, **kwargs: Any) -> None:
        pending = list(self.document.findall(repro_pending))
        if not pending:
            return
        ctx = Context(self.env, Path(self.config.reprokit_project_root), self.document)
        for node in pending:
            new, target = _RESOLVERS[node["kind"]](node, ctx)
            ctx.replace(node, new, target)


def _resolve_project_root(app: Sphinx, config: Config) -> None:
    # Made absolute once, from the directory holding conf.py (DESIGN.md: the
    # project root, which run.json's code_files are relative to).
    base = Path(app.confdir or app.srcdir)
    config.reprokit_project_root = str((base / (config.reprokit_project_root or ".")).resolve())


def setup_common(app: Sphinx) -> None:
    app.add_config_value(
        "reprokit_project_root",
        None,
        "env",
        types=frozenset({str, type(None)}),
        description="where run.json's code_files are relative to (default: conf.py's dir)",
    )
    app.connect("config-inited", _resolve_project_root)
    app.add_transform(ResolveEvidence)
