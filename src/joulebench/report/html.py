"""The report as one self-contained HTML page: inline CSS, figures embedded as base64 PNG, no scripts or
external resources, so it opens offline and can be mailed as a single file."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape

from joulebench.report.figures import FigureFiles
from joulebench.report.tables import Table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td:nth-child(-n+3) { text-align: left; }
p.note { font-size: 0.8em; color: #555; margin: 0.2em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; }
.scroll { overflow-x: auto; }
.warn { color: #8a4b00; font-size: 0.85em; }
"""


@dataclass(frozen=True)
class Page:
    title: str
    selection: str  # the run filter, or "all runs"
    runs: Table
    ranking: Table | None  # the least energy per token, per model and workload
    tables: tuple[Table, ...]
    figures: tuple[FigureFiles, ...]
    warnings: tuple[str, ...]
    definitions: tuple[str, ...]


def table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in table.notes)
    table_tag = f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'
    return f"<h3>{escape(table.title)}</h3>\n{table_tag}\n{notes}\n"


def figure_html(fig: FigureFiles) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (
        f'<figure id="fig-{escape(fig.name)}"><img class="report-figure" alt="{escape(fig.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(fig.title)} '
        f"(files: {escape(fig.png.name)}, {escape(fig.svg.name)})</figcaption></figure>\n"
    )


def render(page: Page) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(page.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(page.title)}</h1>",
        f'<p class="note">Runs: {escape(page.selection)}</p>',
        table_html(page.runs),
        *(["<h2>Which engine costs the least energy</h2>", table_html(page.ranking)] if page.ranking else []),
        "<h2>Setup and token generation</h2>",
        *(table_html(t) for t in page.tables),
        "<h2>Figures</h2>",
        *(figure_html(f) for f in page.figures),
        "<h2>Definitions</h2><ul>",
        *(f"<li>{escape(d)}</li>" for d in page.definitions),
        "</ul>",
    ]
    if page.warnings:
        parts += [
            "<h2>Result quality</h2><ul>",
            *(f'<li class="warn">{escape(w)}</li>' for w in page.warnings),
        ]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
