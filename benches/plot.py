#!/usr/bin/env python3
"""Draws benches/results.svg from lockyard-bench/processes.json under the
target directory (target/, or $CARGO_TARGET_DIR), written by
`cargo bench --all-features --bench processes`. Standard library only: the
SVG is written by hand."""
import json
import os
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
src = target / "lockyard-bench" / "processes.json"
out = root / "benches" / "results.svg"
data = json.loads(src.read_text())

panels = [
    ("Uncontended acquire + release (ns, lower is better)", data["uncontended_ns"]),
    ("Cross-process hand-off p50 (µs, lower is better)",
     {k: v["p50"] for k, v in data["cross_process_us"].items()}),
    ("4 processes x 250 increments, wall (ms, lower is better)", data["counter_ms"]),
]
width, bar_h, gap, label_w, top = 900, 18, 6, 300, 30
rows = sum(len(p[1]) for p in panels)
height = top + rows * (bar_h + gap) + len(panels) * 50
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
       f'font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>']
y = top
for title, values in panels:
    svg.append(f'<text x="10" y="{y}" font-size="14" font-weight="bold">{title}</text>')
    y += 12
    biggest = max(values.values()) or 1
    for name, v in values.items():
        w = max(1, (width - label_w - 90) * v / biggest)
        color = "#2b7bb9" if name.startswith("lockyard") else "#999999"
        svg.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{name}</text>')
        svg.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        svg.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 13}">{v:,.1f}</text>')
        y += bar_h + gap
    y += 38
svg.append("</svg>")
out.write_text("\n".join(svg) + "\n")
print(f"wrote {out}", file=sys.stderr)
