# Redaction of what a capture must not publish: local absolute paths become
# placeholders (<venv>, <python>, <project>, <tmp>, <home>) and credentials in
# mongodb:// URIs become ***. Pure string functions, applied to the trace
# HTML, the trace JSON, the run record and anything logged or printed.
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

_URI_CREDENTIALS = re.compile(r"(mongodb(?:\+srv)?://)([^@/\s\"'<>]+)@", re.IGNORECASE)


def redact_uri(text: str) -> str:
    """Replace user:password in every mongodb:// URI of `text` with ***."""
    return _URI_CREDENTIALS.sub(r"\1***@", text)


class Redactor:
    """Replaces absolute path prefixes, longest first, with placeholders."""

    def __init__(self, prefixes: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = prefixes.items() if isinstance(prefixes, Mapping) else prefixes
        cleaned = {
            path.rstrip("/"): placeholder
            for path, placeholder in items
            if path and path.rstrip("/") not in ("", "/")
        }
        self.pairs = sorted(cleaned.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(p) for p, _ in self.pairs)) if self.pairs else None
        )
        self._html_pattern = (
            re.compile("|".join(re.escape(html.escape(p, quote=True)) for p, _ in self.pairs))
            if self.pairs
            else None
        )
        self._by_path = dict(self.pairs)
        self._by_html = {html.escape(p, quote=True): v for p, v in self.pairs}

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(lambda m: self._by_path[m.group(0)], value)
        return redact_uri(value)

    def html(self, value: str) -> str:
        """Like text(), for HTML: matches escaped paths and escapes the placeholder."""
        if self._html_pattern is not None:
            value = self._html_pattern.sub(lambda m: html.escape(self._by_html[m.group(0)]), value)
        return redact_uri(value)

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-like data."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        return value
