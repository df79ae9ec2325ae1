"""Charts as inline SVG made on the server: no JavaScript library, no CDN (machines may be offline).

Every text that goes into the SVG is escaped; sizes are computed here so the markup needs no inline
styles (the dashboard's Content-Security-Policy forbids them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape


def _nice_step(value: float) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (at least 1: counts are whole)."""
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _ticks(peak: int, intervals: int = 4) -> list[int]:
    """Whole-number axis ticks from 0 past `peak`, about `intervals` of them."""
    step = _nice_step(max(peak, 1) / intervals)
    top = -(-max(peak, 1) // step) * step
    return list(range(0, top + 1, step))


def _label(start: str, bucket: str) -> str:
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return moment.strftime("%H:%M") if bucket == "hour" else moment.strftime("%b %d")


def timeseries_svg(points: Sequence[dict[str, Any]], bucket: str, *, width: int = 760, height: int = 230) -> Markup:
    """Calls (bars) and denials (red bars in front) per bucket, with a y axis and a few time labels."""
    left, right, top, bottom = 44, 12, 14, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Calls and denials over time" xmlns="http://www.w3.org/2000/svg">']
    if not points:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" class="chart-empty" text-anchor="middle">'
                     'No calls in this period</text></svg>')
        return Markup("".join(parts))
    ticks = _ticks(max(int(p["calls"]) for p in points))
    peak = ticks[-1]
    for value in ticks:  # grid lines and y labels
        y = top + plot_h - plot_h * value / peak
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value:,}</text>')
    slot = plot_w / len(points)
    bar = max(1.0, min(28.0, slot * 0.7))
    every = max(1, len(points) // 8)
    for index, point in enumerate(points):
        x = left + slot * index + (slot - bar) / 2
        calls, denied = int(point["calls"]), int(point["denied"])
        label = escape(_label(point["start"], bucket))
        tip = f"{label}: {calls} calls, {denied} denied"
        if calls:
            h = plot_h * calls / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'rx="2" class="bar-calls"><title>{tip}</title></rect>')
        if denied:
            h = plot_h * denied / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'rx="2" class="bar-denied"><title>{tip}</title></rect>')
        if index % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" class="axis" '
                         f'text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="baseline"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def top_tools_svg(rows: Sequence[dict[str, Any]], *, width: int = 360, row_height: int = 30) -> Markup:
    """Horizontal bars of the busiest tools (`rows`: tool, server, calls, denied), busiest first."""
    if not rows:
        return Markup(f'<svg class="chart" viewBox="0 0 {width} 60" xmlns="http://www.w3.org/2000/svg">'
                      f'<text x="{width / 2:.0f}" y="34" class="chart-empty" text-anchor="middle">'
                      'No tool calls yet</text></svg>')
    height = row_height * len(rows) + 8
    label_w, count_w = 130, 56
    bar_w = width - label_w - count_w
    peak = max(int(r["calls"]) for r in rows) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Top tools" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for index, row in enumerate(rows):
        y = 4 + index * row_height
        name = escape(f"{row['server']}/{row['tool']}")
        short = escape(_shorten(f"{row['server']}/{row['tool']}", 20))
        calls, denied = int(row["calls"]), int(row["denied"])
        w = max(2.0, bar_w * calls / peak)
        dw = bar_w * denied / peak
        parts.append(f'<text x="{label_w - 8}" y="{y + row_height / 2 + 4:.1f}" class="label" '
                     f'text-anchor="end"><title>{name}</title>{short}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{w:.1f}" height="{row_height - 10}" rx="3" '
                     f'class="bar-calls"><title>{name}: {calls} calls, {denied} denied</title></rect>')
        if denied:
            parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{dw:.1f}" height="{row_height - 10}" rx="3" '
                         f'class="bar-denied"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + row_height / 2 + 4:.1f}" class="count">{calls}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def top_tools(tool_rows: Sequence[dict[str, Any]], limit: int = 8) -> list[dict[str, Any]]:
    """The Tools table's rows summed per server and tool (callers merged), busiest first."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in tool_rows:
        key = (row["server"], row["tool"])
        entry = totals.setdefault(key, {"server": row["server"], "tool": row["tool"], "calls": 0, "denied": 0})
        entry["calls"] += int(row["calls"])
        entry["denied"] += int(row["denied"])
    ranked = sorted(totals.values(), key=lambda r: (-r["calls"], r["server"], r["tool"]))
    return ranked[:limit]
