# `repro-trace`: one variant's captured stacks. The HTML builders get the
# tracer's HTML (sanitized again when read) in a horizontally scrollable box,
# every other builder a literal block of the JSON twin's frames. Both are kept
# in the doctree under `only` nodes, so one read serves any builder.
from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

from reprokit.sphinxext import evidence
from reprokit.sphinxext.common import (
    Context,
    Resolved,
    format_date,
    label,
    pending_from,
    register_resolver,
    repro_pending,
    verdict_badge,
)

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import OptionSpec

KIND = "trace"


class ReproTrace(SphinxDirective):
    """``.. repro-trace:: evidence/<scenario>/<variant>``"""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[OptionSpec] = {
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "class": directives.class_option,
    }

    def run(self) -> list[nodes.Node]:
        node, messages = pending_from(self, KIND)
        return [node, *messages]


def default_caption(run: evidence.RunInfo, language: str | None = None) -> list[nodes.Node]:
    """``motor-0.4 · deadlock · captured 2026-12-03`` (plus the expected verdict if it differs)."""
    parts: list[nodes.Node] = [
        nodes.strong(run.variant, run.variant, classes=["repro-variant"]),
        nodes.Text(" \u00b7 "),
        verdict_badge(run.verdict, run.expected),
    ]
    if run.expected is not None and run.expected != run.verdict:
        parts.append(nodes.Text(f" ({label(language, 'expected')} {run.expected})"))
    captured = f" \u00b7 {label(language, 'captured')} {format_date(run.captured_at)}"
    parts.append(nodes.inline(captured, captured, classes=["repro-captured"]))
    return parts


def trace_box_html(variant: str, trace_html: str) -> str:
    """The scrollable, keyboard-focusable region around the sanitized trace."""
    label = escape(f"Stacks captured for {variant}", quote=True)
    return (
        f'<div class="repro-trace-box" role="region" tabindex="0" aria-label="{label}">\n'
        f"{trace_html}\n</div>\n"
    )


def resolve_trace(node: repro_pending, ctx: Context) -> Resolved:
    rel = node["evidence"]
    run = ctx.load_run(node, rel)
    if run is None:  # one warning per directive is enough
        return [], None
    trace = ctx.load(
        node,
        evidence.load_trace,
        ctx.path(rel),
        [evidence.TRACE_HTML_FILE, evidence.TRACE_JSON_FILE],
    )
    if trace is None:
        return [], None

    caption = nodes.paragraph(classes=["repro-caption"])
    caption.extend(list(node.children) or default_caption(run, ctx.env.config.language))

    as_html = addnodes.only(expr="format_html")
    as_html += nodes.raw("", trace_box_html(run.variant, trace.html), format="html")
    as_text = addnodes.only(expr="not format_html")
    listing = nodes.literal_block(trace.text, trace.text, classes=["repro-trace-text"])
    listing["language"] = "none"
    as_text += listing

    container = nodes.container(classes=["repro-trace"])
    container += [caption, as_html, as_text]
    return [container], container


def setup_trace(app: Sphinx) -> None:
    register_resolver(KIND, resolve_trace)
    app.add_directive("repro-trace", ReproTrace)
