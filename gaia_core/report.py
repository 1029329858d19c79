"""The demo's report: report.md with a self-contained SVG (a line chart and a bar chart, no plotting library)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PAD = 420, 260, 44


def _frame(x0: int, title: str) -> list[str]:
    return [
        f'<g transform="translate({x0},0)">',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{PAD}" y2="34" stroke="#333"/>',
    ]


def line_chart(x0: int, title: str, values: Sequence[float], y_label: str) -> list[str]:
    """A line chart of ``values`` (x = 1..n) scaled 0..1."""
    parts = _frame(x0, title)
    n = max(1, len(values))
    span_x, span_y = WIDTH - 10 - PAD, HEIGHT - PAD - 34
    points = [(PAD + span_x * (i + 1) / n, HEIGHT - PAD - span_y * v) for i, v in enumerate(values)]
    parts.append('<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
    for i, ((x, y), v) in enumerate(zip(points, values, strict=True)):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4"/>')
        parts.append(f'<text x="{x:.1f}" y="{y - 7:.1f}" text-anchor="middle" font-size="10">{v:.0%}</text>')
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle" font-size="10">{i + 1}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = HEIGHT - PAD - span_y * frac
        parts.append(f'<text x="{PAD - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">{frac:.0%}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">round</text>')
    parts.append(f'<text x="12" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 12 {HEIGHT / 2})" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts + ["</g>"]


def bar_chart(x0: int, title: str, bars: dict[str, float], unit: str) -> list[str]:
    """A bar chart of named values."""
    parts = _frame(x0, title)
    top = max(bars.values(), default=0.0) or 1.0
    n = max(1, len(bars))
    span_x, span_y = WIDTH - 10 - PAD, HEIGHT - PAD - 44
    width = span_x / n * 0.6
    for i, (name, value) in enumerate(bars.items()):
        x = PAD + span_x * (i + 0.2) / n
        h = span_y * value / top
        parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{width:.1f}" height="{h:.1f}"'
                     ' fill="#2ca02c"/>')
        parts.append(f'<text x="{x + width / 2:.1f}" y="{HEIGHT - PAD - h - 5:.1f}" text-anchor="middle" '
                     f'font-size="10">{value:.3g} {escape(unit)}</text>')
        parts.append(f'<text x="{x + width / 2:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle" '
                     f'font-size="10">{escape(name)}</text>')
    return parts + ["</g>"]


def svg(accuracy: Sequence[float], work: dict[str, float]) -> str:
    """Accuracy per round beside work (gigafuel) per node, as one SVG document."""
    body = line_chart(0, "Held-out accuracy per round", accuracy, "accuracy") + \
        bar_chart(WIDTH + 20, "Verified work per node", work, "Gfuel")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH + 20}" height="{HEIGHT}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def write(directory: Path, summary: dict[str, Any]) -> Path:
    """Write report.md and report.svg into ``directory``; return the Markdown file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    accuracy = [r["accuracy"] for r in summary["rounds"]]
    work = {name: node["fuel"] / 1e9 for name, node in sorted(summary["per_node"].items())}
    (directory / "report.svg").write_text(svg(accuracy, work), encoding="utf-8")
    lines = ["# GAIA demo: federated training of the digits classifier", "",
             f"Final held-out accuracy **{summary['final_accuracy']:.1%}** in {summary['seconds']}s.", "",
             "![accuracy and work](report.svg)", "", "| round | loss | accuracy | seconds | tasks |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['loss']:.4f} | {r['accuracy']:.1%} | {r['seconds']:.1f} | {r['tasks']} |"
              for r in summary["rounds"]]
    lines += ["", "| node | tasks | verified | gigafuel | credit |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {n['tasks']} | {n['verified']} | {n['fuel'] / 1e9:.3f} | {n['credit']:.4g} |"
              for name, n in sorted(summary["per_node"].items())]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
