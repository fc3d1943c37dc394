# `repro-variants`: the table of a scenario's variants, in index.json order,
# one row per variant from its run.json. Built from docutils table nodes so
# every builder renders it; a missing variant still gets a row saying so.
from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from reprokit.sphinxext import evidence
from reprokit.sphinxext.common import (
    Context,
    Resolved,
    format_date,
    format_seconds,
    label,
    pending_from,
    register_resolver,
    repro_pending,
    verdict_badge,
)

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import OptionSpec

KIND = "variants"
DASH = "\u2014"


def package_list(argument: str | None) -> list[str]:
    """``motor, pymongo tornado`` -> ["motor", "pymongo", "tornado"]."""
    names = [name for name in re.split(r"[\s,]+", argument or "") if name]
    if not names:
        raise ValueError("expected one or more package names")
    return names


class ReproVariants(SphinxDirective):
    """``.. repro-variants:: evidence/<scenario>``"""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[OptionSpec] = {
        "packages": package_list,
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "class": directives.class_option,
    }

    def run(self) -> list[nodes.Node]:
        node, messages = pending_from(self, KIND, packages=self.options.get("packages"))
        return [node, *messages]


def _entry(*content: nodes.Node | str) -> nodes.entry:
    para = nodes.paragraph()
    for item in content:
        para += nodes.Text(item) if isinstance(item, str) else item
    return nodes.entry("", para)


def _server(run: evidence.RunInfo, language: str | None) -> str:
    if run.server_name is None:
        return label(language, "none")
    text = " ".join(part for part in (run.server_name, run.server_version) if part)
    return f"{text} {label(language, 'via gateway')}" if run.gateway else text


def normalize(name: str) -> str:
    """PEP 503 name normalization, so `:packages:` may spell a name either way."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned_names(runs: list[evidence.RunInfo | None]) -> list[str]:
    """Default columns: the packages the variants pin, in the order they pin them."""
    seen: dict[str, None] = {}
    for run in runs:
        if run is not None:
            for requirement in run.requirements:
                name = re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0]
                if name:
                    seen.setdefault(name)
    return list(seen)


def _version(run: evidence.RunInfo, package: str) -> str:
    wanted = normalize(package)
    for name, version in run.packages.items():
        if normalize(name) == wanted:
            return version
    return DASH


def resolve_variants(node: repro_pending, ctx: Context) -> Resolved:
    rel = node["evidence"]
    index = ctx.load(node, evidence.load_index, ctx.path(rel), [evidence.INDEX_FILE])
    if index is None:
        return [], None
    runs: list[evidence.RunInfo | None] = []
    for name in index.variants:
        run = ctx.load_run(node, f"{rel}/{name}")
        if run is not None and run.variant != name:
            ctx.warn(
                node,
                "schema",
                f"{rel}/{name}/run.json is for variant {run.variant!r}, "
                f"but index.json lists it as {name!r}; run `make repro` to capture it again",
            )
        runs.append(run)
    packages: list[str] = node.get("packages") or _pinned_names(runs)
    present = [run for run in runs if run is not None]
    for package in node.get("packages") or []:
        if present and all(_version(run, package) == DASH for run in present):
            ctx.warn(
                node,
                "packages",
                f"no variant in {rel} has the package {package!r}: check the spelling "
                "in :packages: (the column would be empty)",
            )

    # The verdict comes right after the name: on a narrow page the table
    # scrolls sideways, and what a reader wants first must not scroll away.
    language = ctx.env.config.language
    headers = [label(language, h) for h in ("Variant", "Verdict", "Expected", "Python")]
    headers += [*packages, label(language, "Server")]
    headers += [label(language, "Time to verdict"), label(language, "Captured")]
    table = nodes.table(classes=["repro-variants", "colwidths-auto"])
    if node.children:
        table += nodes.title("", "", *node.children)
    rows: list[list[nodes.entry]] = []
    for name, run in zip(index.variants, runs, strict=True):
        variant = nodes.inline(name, name, classes=["repro-variant"])
        if run is None:
            missing = verdict_badge("missing")
            cells = [_entry(variant), *(_entry(DASH) for _ in headers[1:])]
            cells[1] = _entry(missing)  # the verdict column
        else:
            server = _entry(_server(run, language))
            server["classes"].append("repro-col-server")
            cells = [
                _entry(variant),
                _entry(verdict_badge(run.verdict, run.expected)),
                _entry(run.expected or DASH),
                _entry(run.python or DASH),
                *(_entry(_version(run, p)) for p in packages),
                server,
                _entry(format_seconds(run.time_to_verdict)),
                _entry(format_date(run.captured_at)),
            ]
        rows.append(cells)

    head = [_entry(h) for h in headers]
    tgroup = nodes.tgroup(cols=len(headers))
    table += tgroup
    # Widths matter only to builders that lay text out themselves (text, LaTeX);
    # HTML sizes the columns itself ("colwidths-auto").
    for column in zip(head, *rows, strict=True):
        tgroup += nodes.colspec(colwidth=max(len(cell.astext()) for cell in column))
    tgroup += nodes.thead("", nodes.row("", *head))
    tgroup += nodes.tbody("", *(nodes.row("", *cells) for cells in rows))

    wrapper = nodes.container(classes=["repro-variants-scroll"])
    wrapper += table
    return [wrapper], table


def setup_variants(app: Sphinx) -> None:
    register_resolver(KIND, resolve_variants)
    app.add_directive("repro-variants", ReproVariants)
