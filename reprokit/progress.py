# What the terminal shows while variants run in parallel.
#
# On a terminal every variant owns one live line, rewritten in place as it
# moves through its steps (env, server, load, verdict). Anywhere else (CI
# logs, pipes, tests) each step is one plain line prefixed by the variant, so
# logs stay greppable. Both modes redact URI credentials and local paths.
# Threads report through one lock; only this module writes to stdout while a
# batch runs.
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from reprokit.redact import Redactor


class Progress:
    def __init__(
        self,
        names: Sequence[str],
        redactor: Redactor | None = None,
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.names = list(names)
        self.width = max((len(n) for n in names), default=0)
        self.redactor = redactor or Redactor({})
        self.lines = {name: "waiting" for name in names}
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self._drawn = 0

    def __call__(self, name: str, message: str) -> None:
        message = self.redactor.text(message)
        with self.lock:
            if name not in self.lines:
                self.names.append(name)
                self.width = max(self.width, len(name))
            self.lines[name] = message
            if self.live:
                self._redraw()
            else:
                print(f"[{name:<{self.width}}] {message}", file=self.stream, flush=True)

    def note(self, message: str) -> None:
        """A line that is not about one variant (header, summary)."""
        with self.lock:
            if self.live:
                self._drawn = 0  # the block stays above; start a new one below
            print(self.redactor.text(message), file=self.stream, flush=True)

    def _redraw(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F")
        elapsed = time.monotonic() - self.started
        for name in self.names:
            text = f"[{name:<{self.width}}] {elapsed:6.1f}s  {self.lines[name]}"
            self.stream.write("\x1b[2K" + text[:200] + "\n")
        self._drawn = len(self.names)
        self.stream.flush()


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def project_redactor(matrix: Any) -> Redactor:
    """Shows paths inside the project as <project>/..., on the terminal too."""
    from reprokit.artifacts import project_root

    return Redactor({str(project_root(matrix.path.parent)): "<project>"})
