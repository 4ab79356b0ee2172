"""The run's throughput and p99 over time as an SVG chart (no dependency: plain SVG text)."""

from __future__ import annotations

from html import escape

from reviewlab_lab.chaos.goals import Second

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 64, 34, 40


def _polyline(points: list[tuple[float, float]], colour: str, dashed: bool = False) -> str:
    if len(points) < 2:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{path}"/>'


def svg(title: str, seconds: list[Second], fault: tuple[float, float]) -> str:
    """Reads/s and writes/s (left axis), read p99 in ms (right axis); the fault shaded."""
    if not seconds:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="40"></svg>'
    t0, t1 = seconds[0].t, seconds[-1].t + 1
    top_rate = max(max(s.reads for s in seconds), max(s.writes for s in seconds), 1) * 1.1
    top_ms = max([s.read_p99_ms or 0 for s in seconds] + [50.0]) * 1.1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(value: float, top: float) -> float:
        return TOP + plot_h - value / top * plot_h

    mid = [(s.t + 0.5, s) for s in seconds]
    reads = [(x(t), y(s.reads, top_rate)) for t, s in mid]
    writes = [(x(t), y(s.writes, top_rate)) for t, s in mid]
    p99 = [(x(t), y(s.read_p99_ms, top_ms)) for t, s in mid if s.read_p99_ms is not None]
    start, end = max(fault[0], t0), min(max(fault[1], fault[0] + 0.2), t1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{x(start):.1f}" y="{TOP}" width="{x(end) - x(start):.1f}" height="{plot_h}" '
        'fill="#f8d7da"/>',
        f'<text x="{x(start) + 3:.1f}" y="{TOP + 14}" fill="#a33">fault</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    for i in range(5):
        frac = i / 4
        yy = TOP + plot_h - frac * plot_h
        parts.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{top_rate * frac:.0f}</text>'
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{yy + 4:.1f}" fill="#c0392b">'
            f"{top_ms * frac:.0f}</text>"
        )
    step = max(1, round((t1 - t0) / 10))
    tick = int(t0)
    while tick <= t1:
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{tick:+d}</text>"
        )
        tick += step
    parts += [
        _polyline(reads, "#2563eb"),
        _polyline(writes, "#16a34a"),
        _polyline(p99, "#c0392b", dashed=True),
        f'<text x="{LEFT}" y="{HEIGHT - 8}">s after the fault; '
        '<tspan fill="#2563eb">reads/s</tspan>, <tspan fill="#16a34a">writes/s</tspan> '
        '(left), <tspan fill="#c0392b">read p99 ms</tspan> (right, dashed)</text>',
        "</svg>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
