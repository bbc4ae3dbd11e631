"""Small static SVG charts for the HTML reports: no JavaScript, no network.

Four charts are all the reports need (bars, horizontal bars, a Pareto curve,
the 0-10 score distribution), so they are written by hand rather than pulling
in a charting library.  Every label is XML-escaped; sizes come from a viewBox,
so the charts scale on a phone and print crisply.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 260
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 56, 36, 16
INK, MUTED, ACCENT = "#1f2937", "#6b7280", "#2563eb"


def _svg(body: list[str], title: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(title)}" class="chart">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (an axis divisible by 5)."""
    if value <= 0:
        return 5.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return max(step * magnitude, 5.0)
    return 10.0 * magnitude


def _short(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}"


def bar_chart(items: Sequence[tuple[str, float]], title: str,
              colors: Sequence[str] | None = None, width: int = WIDTH) -> str:
    """Vertical bars with a labelled y axis (e.g. revenue by month)."""
    top = _nice_max(max((v for _, v in items), default=0))
    plot_w, plot_h = width - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    body = []
    for k in range(6):
        value = top * k / 5
        y = PAD_TOP + plot_h - plot_h * k / 5
        body.append(f'<line x1="{PAD_LEFT}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="#e5e7eb"/>')
        body.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                    f'font-size="11" fill="{MUTED}">{_short(value)}</text>')
    slot = plot_w / max(len(items), 1)
    for n, (label, value) in enumerate(items):
        h = plot_h * value / top if top else 0
        x = PAD_LEFT + n * slot + slot * 0.15
        color = colors[n] if colors else ACCENT
        body.append(f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
                    f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{escape(label)}: {_short(value)}</title></rect>")
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
                    f'text-anchor="middle" font-size="11" fill="{INK}">{escape(label)}</text>')
    return _svg(body, title, width)


def funnel(items: Sequence[tuple[str, int]], title: str, width: int = 420) -> str:
    """Horizontal bars, one per stage, widest first in a funnel's order."""
    height = 34 * len(items) + 8
    top = max((v for _, v in items), default=0) or 1
    body = []
    for n, (label, value) in enumerate(items):
        w = (width - 170) * value / top
        y = 6 + n * 34
        body.append(f'<text x="120" y="{y + 18}" text-anchor="end" font-size="13" '
                    f'fill="{INK}">{escape(label)}</text>')
        body.append(f'<rect class="bar" x="130" y="{y}" width="{w:.1f}" height="26" rx="3" '
                    f'fill="{ACCENT}" opacity="{1 - n * 0.12:.2f}"/>')
        body.append(f'<text x="{136 + w:.1f}" y="{y + 18}" font-size="13" '
                    f'fill="{INK}">{value}</text>')
    return _svg(body, title, width, height)


def pareto(values: Sequence[float], title: str, a: float = 0.8, b: float = 0.95,
           width: int = 420, caption: str | None = None) -> str:
    """Cumulative share of revenue over customers ranked by revenue, with the A/B lines;
    ``caption`` under the curve (default: how many customers, in English)."""
    total = sum(values)
    plot_w, plot_h = width - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    body = []
    for share, label in ((0.0, "0%"), (a, f"{a:.0%}"), (b, f"{b:.0%}"), (1.0, "100%")):
        y = PAD_TOP + plot_h * (1 - share)
        dash = ' stroke-dasharray="4 4"' if 0 < share < 1 else ""
        body.append(f'<line x1="{PAD_LEFT}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{MUTED if dash else "#e5e7eb"}"{dash}/>')
        body.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                    f'font-size="11" fill="{MUTED}">{label}</text>')
    points = [f"{PAD_LEFT},{PAD_TOP + plot_h}"]
    running = list(itertools.accumulate(values))
    # at most two points per pixel of width (10,000 customers are not 10,000 points
    # on 400 pixels), the last customer always: the curve looks the same
    step = max(1, len(values) // (2 * plot_w))
    for n in ([*range(step, len(values), step), len(values)] if values else ()):
        x = PAD_LEFT + plot_w * n / len(values)
        y = PAD_TOP + plot_h * (1 - (running[n - 1] / total if total else 0))
        points.append(f"{x:.1f},{y:.1f}")
    body.append(f'<polyline class="curve" points="{" ".join(points)}" fill="none" '
                f'stroke="{ACCENT}" stroke-width="2.5"/>')
    body.append(f'<text x="{PAD_LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle" '
                f'font-size="11" fill="{MUTED}">'
                f"{escape(caption or f'{len(values)} customers with revenue, ranked')}</text>")
    return _svg(body, title, width)


def score_distribution(counts: dict[int, int], title: str, width: int = 420) -> str:
    """Bars for scores 0-10: detractors red, passives grey, promoters green."""
    colors = ["#dc2626"] * 7 + ["#9ca3af"] * 2 + ["#16a34a"] * 2
    return bar_chart([(str(s), float(counts.get(s, 0))) for s in range(11)], title, colors,
                     width)


def monthly(rows: Sequence[dict], title: str) -> str:
    """Bars per month from ``[{"month": "2026-11", "revenue": ...}, ...]``."""
    return bar_chart([(str(r["month"])[2:], float(r["revenue"])) for r in rows], title)
