# The author's old blog put a few `key: value` lines before a post's title
# (`public: yes`, `tags: [a, b]`, `summary: ...`). This module keeps that
# habit working under ABlog.
#
# Strategy: `parse_header` is pure (text in, metadata out) and strict, because
# a typo in a header would otherwise publish a draft or drop a tag silently.
# The Sphinx hook runs first on `source-read`; it blanks the header lines (so
# every later line keeps its number in warnings) and appends the equivalent
# `.. post::` directive at the end of the document, where it cannot shift
# anything. `public: no` drops the date, which is how ABlog marks a draft (and
# `:nosearch:` keeps it out of the search index); a public post must have a
# date, so a build never silently dates a post "today". An empty summary
# leaves the directive without content, so ABlog falls back to the first
# paragraph.
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from sphinx.util import logging

logger = logging.getLogger(__name__)

ERRORS_ATTR = "reprokit_post_header_errors"
KNOWN_KEYS = ("public", "tags", "summary", "date", "author")

_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*):(?:[ \t]+(?P<value>.*?))?[ \t]*$")
_UNDERLINE = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")
_TRUE = {"yes", "true", "on"}
_FALSE = {"no", "false", "off"}
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S")


class HeaderError(ValueError):
    """A malformed post header; `line` is 1-based within the parsed text."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class ParsedHeader(NamedTuple):
    """What `parse_header` returns: metadata, the text after it, and its offset.

    `body` starts at line `offset + 1` of the original text.
    """

    meta: dict[str, Any]
    body: str
    offset: int


def _is_header_start(lines: list[str]) -> bool:
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or first != 0 or not _KEY_LINE.match(lines[0]):
        return False
    # "Update: a title" followed by "======" is a section title, not a header.
    return not (len(lines) > 1 and _UNDERLINE.match(lines[1]))


def _parse_bool(line: int, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise HeaderError(line, f"public must be yes or no, not {value!r}")


def _parse_list(line: int, value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise HeaderError(line, f"tags list is not closed with ']': {value!r}")
        text = text[1:-1]
    elif text.endswith("]"):
        raise HeaderError(line, f"tags list has ']' but no '[': {value!r}")
    if not text.strip():
        return []
    items = []
    for raw in text.split(","):
        item = raw.strip()
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
            item = item[1:-1].strip()
        if not item:
            raise HeaderError(line, f"empty item in tags list: {value!r}")
        if any(ch in item for ch in "[]'\""):
            raise HeaderError(line, f"bad tags list syntax near {item!r}: {value!r}")
        items.append(item)
    return items


def _parse_date(line: int, value: str) -> str:
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return parsed.date().isoformat() if fmt == "%Y-%m-%d" else parsed.isoformat(sep=" ")
    raise HeaderError(line, f"date must look like 2015-05-20 (optionally with HH:MM): {value!r}")


def _convert(key: str, line: int, value: str) -> Any:
    if key == "public":
        return _parse_bool(line, value)
    if key == "tags":
        return _parse_list(line, value)
    if key == "date":
        return _parse_date(line, value)
    return value.strip()


def parse_header(text: str) -> ParsedHeader:
    """Split the old-style header off `text`.

    Text without a header comes back unchanged with empty metadata and offset 0.
    A header is the run of `key: value` lines at the very top, ended by a blank
    line; an indented line continues the previous value. Raises `HeaderError`
    for an unknown or repeated key, a bad value, or a header not followed by a
    blank line.
    """
    lines = text.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    if not _is_header_start(bare):
        return ParsedHeader({}, text, 0)
    raw: dict[str, tuple[int, str]] = {}
    last_key: str | None = None
    index = 0
    while index < len(bare) and bare[index].strip():
        number = index + 1
        current = bare[index]
        if current[:1] in (" ", "\t") and last_key is not None:
            start, value = raw[last_key]
            raw[last_key] = (start, f"{value} {current.strip()}".strip())
        else:
            match = _KEY_LINE.match(current)
            if match is None:
                raise HeaderError(
                    number,
                    f"expected 'key: value' in the post header, got {current.strip()!r} "
                    "(end the header with a blank line before the title)",
                )
            key = match.group("key").lower()
            if key not in KNOWN_KEYS:
                raise HeaderError(
                    number, f"unknown header key {key!r} (known: {', '.join(KNOWN_KEYS)})"
                )
            if key in raw:
                raise HeaderError(number, f"header key {key!r} given twice")
            raw[key] = (number, match.group("value") or "")
            last_key = key
        index += 1
    if index >= len(bare):
        raise HeaderError(index, "the post header is not followed by a blank line and a title")
    index += 1  # the blank line that ends the header
    meta = {key: _convert(key, number, value) for key, (number, value) in raw.items()}
    if meta.get("public", True) and "date" not in meta:
        raise HeaderError(
            raw["public"][0] if "public" in raw else 1,
            "a public post needs a date: add a line 'date: YYYY-MM-DD' to the header",
        )
    return ParsedHeader(meta, "".join(lines[index:]), index)


def post_directive(meta: dict[str, Any]) -> str:
    """The `.. post::` directive equivalent to a parsed header (ABlog syntax)."""
    head = ".. post::"
    if meta.get("public", True):
        head += f" {meta['date']}"
    out = [head]
    if meta.get("tags"):
        out.append(f"   :tags: {', '.join(meta['tags'])}")
    if meta.get("author"):
        out.append(f"   :author: {meta['author']}")
    summary = meta.get("summary", "")
    if summary:
        out.append("   :exclude:")
        out.append("")
        out.append(f"   {summary}")
    return "\n".join(out) + "\n"


def rewrite_source(text: str) -> tuple[str, dict[str, Any]]:
    """Blank the header lines and append the equivalent post directive.

    The result has exactly as many lines before the body as the original, so
    line numbers in every later message still point into the author's file.
    """
    parsed = parse_header(text)
    if parsed.offset == 0:
        return text, {}
    body = parsed.body
    if body and not body.endswith("\n"):
        body += "\n"
    # A draft stays out of the search index: `:nosearch:` takes the header's
    # first line (a header always has a blank line after it, so the field list
    # is closed before the title).
    lead = (
        ":nosearch:\n" + "\n" * (parsed.offset - 1) if not parsed.meta.get("public", True) else ""
    )
    lead = lead or "\n" * parsed.offset
    return lead + body + "\n\n" + post_directive(parsed.meta), parsed.meta


# --- Sphinx glue ---------------------------------------------------------------------------


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    """Rewrite a post's header; a malformed one is a located error that fails the build.

    Like Sphinx's linkcheck, the error sets the exit status instead of raising,
    so every bad header of a build is reported at once. The document is kept
    outdated, so an unchanged bad header fails the next build too.
    """
    errors = app.env.__dict__.setdefault(ERRORS_ATTR, {})
    errors.pop(docname, None)
    try:
        source[0], _meta = rewrite_source(source[0])
    except HeaderError as exc:
        errors[docname] = str(exc)
        logger.error(
            "post header: %s",
            exc.message,
            location=(docname, exc.line),
            type="reprokit",
            subtype="post-header",
        )


def _outdated(
    app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    return [name for name in env.__dict__.get(ERRORS_ATTR, {}) if name in env.found_docs]


def _purge(app: Any, env: Any, docname: str) -> None:
    env.__dict__.get(ERRORS_ATTR, {}).pop(docname, None)


def _merge(app: Any, env: Any, docnames: set[str], other: Any) -> None:
    theirs = other.__dict__.get(ERRORS_ATTR, {})
    env.__dict__.setdefault(ERRORS_ATTR, {}).update(
        {name: message for name, message in theirs.items() if name in docnames}
    )


def _finished(app: Any, exception: BaseException | None) -> None:
    if exception is None and app.env.__dict__.get(ERRORS_ATTR):
        app.statuscode = 1


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("ablog")
    app.connect("source-read", _source_read, priority=10)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("build-finished", _finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
