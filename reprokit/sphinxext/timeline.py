# `repro-timeline`: a variant's timeline.svg as an ordinary image (Sphinx's
# image collector copies it and tracks it). The SVG comes from `make repro`;
# this only embeds it, or warns "missing" where the directive stands.
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from reprokit.sphinxext import evidence
from reprokit.sphinxext.common import (
    Context,
    Resolved,
    pending_from,
    register_resolver,
    repro_pending,
)

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import OptionSpec

KIND = "timeline"


class ReproTimeline(SphinxDirective):
    """``.. repro-timeline:: evidence/<scenario>/<variant>``"""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[OptionSpec] = {
        "alt": directives.unchanged,
        "width": directives.length_or_percentage_or_unitless,
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "class": directives.class_option,
    }

    def run(self) -> list[nodes.Node]:
        node, messages = pending_from(
            self, KIND, alt=self.options.get("alt"), width=self.options.get("width")
        )
        return [node, *messages]


def resolve_timeline(node: repro_pending, ctx: Context) -> Resolved:
    rel = node["evidence"]
    svg = ctx.path(rel, evidence.TIMELINE_FILE)
    ctx.depend(svg)
    if not svg.is_file():
        ctx.warn(
            node,
            "missing",
            f"no timeline at {rel}/{evidence.TIMELINE_FILE}; run `make repro` to capture it",
        )
        return [], None
    variant = rel.rstrip("/").rsplit("/", 1)[-1]
    image = nodes.image(
        uri=f"/{rel}/{evidence.TIMELINE_FILE}",
        alt=node.get("alt") or f"Timeline of the {variant} run",
        classes=["repro-timeline-image"],
    )
    if node.get("width"):
        image["width"] = node["width"]
    if not node.children:
        image["classes"].append("repro-timeline")
        return [image], image
    figure = nodes.figure(classes=["repro-timeline"])
    figure += image
    figure += nodes.caption("", "", *node.children)
    return [figure], figure


def setup_timeline(app: Sphinx) -> None:
    register_resolver(KIND, resolve_timeline)
    app.add_directive("repro-timeline", ReproTimeline)
