# The incident as a picture: requests in flight and answered over time, the
# server's connection count, the stall and the verdict, drawn from a run
# record's `timeline` with matplotlib at repro time and stored as SVG next to
# the trace. The SVG is made reproducible (fixed hash salt, no date) so an
# unchanged run gives an unchanged file, and text stays text so the page's
# fonts render it.
from __future__ import annotations

import io
from typing import Any

VERDICT_COLOURS = {"ok": "#2e7d32", "deadlock": "#c62828", "hang": "#ef6c00", "error": "#6a1b9a"}


def _steps(events: list[tuple[float, int]]) -> tuple[list[float], list[int]]:
    """Cumulative step series from (time, +1/-1) events, starting at zero."""
    xs, ys, level = [0.0], [0], 0
    for when, delta in sorted(events):
        xs.append(when)
        ys.append(level)
        level += delta
        xs.append(when)
        ys.append(level)
    return xs, ys


def render_timeline(record: dict[str, Any]) -> bytes:
    """An SVG of the run described by `record` (schema reprokit.run/1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = record.get("timeline") or {}
    requests = timeline.get("requests") or []
    connections = timeline.get("connections") or []
    origin = float(timeline.get("load_started") or 0.0)
    end_candidates = [r["end"] for r in requests if r.get("end") is not None]
    end_candidates += [t for t, _ in connections]
    end_candidates += [timeline.get("capture_at") or 0.0]
    horizon = max([origin + 0.5, *end_candidates]) - origin

    inflight: list[tuple[float, int]] = []
    answered: list[tuple[float, int]] = []
    for request in requests:
        inflight.append((request["start"] - origin, +1))
        # A request cut off when the hung app was killed was never answered:
        # it stays in flight to the end of the picture.
        if request.get("end") is not None and request.get("status") is not None:
            inflight.append((request["end"] - origin, -1))
            answered.append((request["end"] - origin, +1))

    with matplotlib.rc_context(
        {"svg.hashsalt": "reprokit", "svg.fonttype": "none", "font.size": 9}
    ):
        fig, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=(7.2, 3.8), height_ratios=(3, 2), layout="constrained"
        )
        x, y = _steps(inflight)
        top.plot([*x, horizon], [*y, y[-1]], color="#1565c0", label="requests in flight")
        x, y = _steps(answered)
        top.plot([*x, horizon], [*y, y[-1]], color="#2e7d32", label="requests answered")
        top.set_ylabel("requests")
        top.set_ylim(bottom=0, top=max(1, len(requests)) * 1.15)
        top.legend(loc="upper left", frameon=False)
        if connections:
            bottom.step(
                [t - origin for t, _ in connections],
                [n for _, n in connections],
                where="post",
                color="#6d4c41",
            )
        else:
            bottom.text(0.5, 0.5, "no server in this scenario", ha="center",
                        va="center", transform=bottom.transAxes, color="#777777")  # fmt: skip
        bottom.set_ylabel("server\nconnections")
        bottom.set_xlabel("seconds since the first request")
        bottom.set_ylim(bottom=0)
        verdict = str(record.get("verdict", "?"))
        colour = VERDICT_COLOURS.get(verdict, "#333333")
        stall = timeline.get("stall_at")
        for axis in (top, bottom):
            axis.set_xlim(min([0.0] + [t - origin for t, _ in connections[:1]]), horizon)
            axis.grid(alpha=0.3)
            if stall is not None:
                axis.axvline(stall - origin, color=colour, linestyle="--", linewidth=1)
        if stall is not None:
            top.annotate(
                "stall detected ", (stall - origin, max(1, len(requests)) * 0.55),
                color=colour, ha="right", va="center", fontsize=8,
            )  # fmt: skip
        top.set_title(
            f"{record.get('variant', '?')}: {verdict}"
            f" ({record.get('requests', {}).get('answered', 0)}/"
            f"{record.get('requests', {}).get('sent', 0)} answered)",
            color=colour,
            loc="left",
        )
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        plt.close(fig)
    return out.getvalue()
