"""A picture of a run's DAG as SVG: one box per job, coloured by its state, left to right."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

COLOURS = {
    "pending": "#e0e0e0",
    "running": "#90caf9",
    "succeeded": "#a5d6a7",
    "failed": "#ef9a9a",
    "skipped": "#fff59d",
    "cancelled": "#bdbdbd",
}
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 120, 32, 50, 14, 10
MAX_LABEL = 16


def layers(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Column of each job: the length of the longest dependency chain leading to it."""
    preds: dict[str, list[str]] = {n: [] for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    indegree = {n: len(preds[n]) for n in names}
    level = dict.fromkeys(names, 0)
    ready = [n for n in names if indegree[n] == 0]
    while ready:
        n = ready.pop()
        for s in succs[n]:
            level[s] = max(level[s], level[n] + 1)
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    return level


def render(
    names: Sequence[str], edges: Sequence[tuple[str, str]], states: Mapping[str, str]
) -> str:
    level = layers(names, edges)
    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(level[n], []).append(n)
    pos: dict[str, tuple[int, int]] = {}
    for col, members in columns.items():
        for row, n in enumerate(members):
            pos[n] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (BOX_H + GAP_Y) - GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#616161"/></marker>'
        "</defs>",
    ]
    for a, b in edges:
        (ax, ay), (bx, by) = pos[a], pos[b]
        out.append(
            f'<line x1="{ax + BOX_W}" y1="{ay + BOX_H // 2}" x2="{bx}" y2="{by + BOX_H // 2}" '
            'stroke="#616161" marker-end="url(#arrow)"/>'
        )
    for n in names:
        x, y = pos[n]
        state = states.get(n, "pending")
        label = n if len(n) <= MAX_LABEL else n[: MAX_LABEL - 1] + "…"
        out.append(
            f'<g class="job {escape(state)}" data-job="{escape(n)}"><title>{escape(n)}: '
            f"{escape(state)}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{COLOURS.get(state, "#ffffff")}" stroke="#424242"/>'
            f'<text x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 4}" text-anchor="middle">'
            f"{escape(label)}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)
