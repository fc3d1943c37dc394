from __future__ import annotations

import io

from reprokit.progress import Progress, table
from reprokit.redact import Redactor


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_mode_prints_one_prefixed_line_per_step() -> None:
    out = io.StringIO()
    progress = Progress(["a", "long-name"], Redactor({"/proj": "<project>"}), stream=out)
    progress("a", "env built in /proj/_build/envs")
    progress("long-name", "uri mongodb://u:secret@h/")
    assert out.getvalue().splitlines() == [
        "[a        ] env built in <project>/_build/envs",
        "[long-name] uri mongodb://***@h/",
    ]


def test_live_mode_keeps_one_line_per_variant_and_rewrites_it() -> None:
    out = Terminal()
    progress = Progress(["a", "b"], stream=out)
    assert progress.live
    progress("a", "starting")
    progress("b", "starting")
    progress("a", "verdict ok")
    screen = out.getvalue()
    # Each redraw moves the cursor back over the block it drew before.
    assert screen.count("\x1b[2F") == 2
    last = screen.rsplit("\x1b[2F", 1)[1]
    lines = [line.replace("\x1b[2K", "") for line in last.splitlines()]
    assert [line.split("] ")[0] for line in lines] == ["[a", "[b"]
    assert lines[0].endswith("verdict ok") and lines[1].endswith("starting")


def test_table_aligns_columns() -> None:
    assert table([("a", "bb"), ("ccc", "d")]) == "a    bb\nccc  d"
