# The one allowlist between captured data and a published page. Trace HTML
# comes from a process we ran on purpose, but its text (source lines, thread
# names, trigger contents, exception messages) is data, so it is treated as
# hostile: only the markup Pygments and the tracer's section/heading wrapper
# produce survives, with `class` and a filtered `style`, and nothing that can
# load, link or run anything (no href/src, no event handlers, no URLs at all).
#
# Invariants: the output never contains script, iframe, svg, event-handler
# attributes, url(...) or expression(...) in styles; sanitizing is idempotent
# (sanitize(sanitize(x)) == sanitize(x)), so the copy stored by `make repro`
# and the copy re-sanitized at embed time are byte-identical.
from __future__ import annotations

import re

import nh3

# Pygments' HtmlFormatter (with or without line-number tables) and the tracer's
# per-thread sections; headings h3-h5 so a wrapper one level off keeps its text
# structure (a stripped tag keeps its text anyway).
ALLOWED_TAGS = frozenset(
    {
        "div",
        "pre",
        "span",
        "code",
        "section",
        "h3",
        "h4",
        "h5",
        "p",
        "strong",
        "em",
        "b",
        "i",
        "br",
        "small",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)

# Removed together with everything inside them (not just the tag).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noscript",
        "template",
        "svg",
        "math",
        "head",
        "title",
        "textarea",
        "select",
    }
)

# Presentation only: nothing that positions an element over the page or sizes
# it out of its box.
ALLOWED_STYLE_PROPERTIES = frozenset(
    {
        "color",
        "background",
        "background-color",
        "font-weight",
        "font-style",
        "text-decoration",
        "border",
        "border-color",
        "border-style",
        "border-width",
        "border-radius",
        "padding",
        "padding-top",
        "padding-right",
        "padding-bottom",
        "padding-left",
        "margin",
        "margin-top",
        "margin-right",
        "margin-bottom",
        "margin-left",
        "white-space",
        "display",
        "line-height",
        "vertical-align",
        "text-align",
        "user-select",
    }
)

# A declaration value may hold colours, lengths and keywords, nothing else: no
# parentheses (url(), expression(), var()), quotes, backslash escapes, colons,
# slashes (comments) or angle brackets; and no negative lengths, which could
# pull an element out of its box over the page around it.
_SAFE_VALUE = re.compile(r"^[#a-zA-Z0-9 .,%-]*$")
_NEGATIVE = re.compile(r"(?:^|[\s,])-")


def _filter_style(value: str) -> str | None:
    kept: list[str] = []
    for declaration in value.split(";"):
        name, sep, val = declaration.partition(":")
        name = name.strip().lower()
        val = val.strip()
        if not sep or not val or name not in ALLOWED_STYLE_PROPERTIES:
            continue
        if not _SAFE_VALUE.fullmatch(val) or _NEGATIVE.search(val):
            continue
        kept.append(f"{name}:{val}")
    return ";".join(kept) if kept else None


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        return _filter_style(value)
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes={"*": {"class", "style", "title"}},
    attribute_filter=_attribute_filter,
    filter_style_properties=set(ALLOWED_STYLE_PROPERTIES),
    strip_comments=True,
    link_rel=None,
    url_schemes=set(),
)


def sanitize_trace_html(html: str) -> str:
    """Return `html` reduced to the trace allowlist (safe to embed in any page).

    The HTML5 parser may restructure invalid nesting (an <h4> inside an <h4>)
    differently on a second pass, so cleaning repeats until nothing changes:
    storing and embedding then give the same bytes.
    """
    cleaned = _CLEANER.clean(html)
    for _ in range(5):
        again = _CLEANER.clean(cleaned)
        if again == cleaned:
            return cleaned
        cleaned = again
    return cleaned
