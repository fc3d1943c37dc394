from __future__ import annotations

import xml.etree.ElementTree as ET

from reprokit.timeline import _steps, render_timeline


def record(verdict: str, stall: float | None) -> dict:
    requests = [{"path": "/", "step": 0, "start": 1.0, "end": None if stall else 1.1, "status": None if stall else 200} for _ in range(4)]
    return {
        "variant": "v",
        "verdict": verdict,
        "requests": {"sent": 4, "answered": 0 if stall else 4},
        "timeline": {
            "load_started": 1.0,
            "stall_at": stall,
            "capture_at": (stall or 1.2) + 0.05,
            "requests": requests,
            "connections": [[0.9, 3], [1.0, 4], [1.5, 4]],
        },
    }


def test_steps_accumulate_events_in_time_order() -> None:
    xs, ys = _steps([(2.0, -1), (1.0, +1), (1.5, +1)])
    assert list(zip(xs, ys))[-1] == (2.0, 1)
    assert max(ys) == 2


def test_the_svg_is_valid_reproducible_and_marks_the_stall() -> None:
    svg = render_timeline(record("deadlock", 2.0))
    assert svg == render_timeline(record("deadlock", 2.0))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    text = svg.decode()
    assert "stall detected" in text and "v: deadlock (0/4 answered)" in text
    assert "<script" not in text


def test_an_ok_run_has_no_stall_marker() -> None:
    text = render_timeline(record("ok", None)).decode()
    assert "stall detected" not in text and "v: ok (4/4 answered)" in text
