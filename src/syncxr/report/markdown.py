"""The small Markdown subset the dataset card and the study report write, and its HTML rendering.

One renderer for both pages (tables, headings, paragraphs, fenced code, images inlined as base64,
inline code / bold / italic), so a page opens with no network and no Markdown library.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Callable

BASE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
    "th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}"
    "img{max-width:100%}code,pre{background:#f3f3f3;padding:1px 3px}pre{padding:8px;overflow-x:auto;font-size:12px}"
)
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)]*)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")

# (alt text, link target) -> key of the figure in `figs`
FigureKey = Callable[[str, str], str]


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def inline(text: str) -> str:
    """Escaped text with `code`, **bold** and *italic*; nothing inside code is interpreted."""
    parts = html.escape(text).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            out.append(_ITALIC.sub(r"<i>\1</i>", _BOLD.sub(r"<b>\1</b>", part)))
    return "".join(out)


def to_html(md: str, figs: dict[str, bytes], title: str, figure_key: FigureKey, style: str = BASE_STYLE) -> str:
    """One self-contained HTML page from `md`; `figure_key` names the figure an image line shows."""
    body: list[str] = []
    rows: list[str] = []
    code: list[str] | None = None
    for line in md.splitlines() + [""]:
        if code is not None:
            if line.startswith("```"):
                body.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-"):
                tag = "td" if rows else "th"
                rows.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if rows:
            body.append("<table>" + "".join(rows) + "</table>")
            rows = []
        image = _IMAGE.match(line)
        if line.startswith("```"):
            code = []
        elif image:
            data = base64.b64encode(figs[figure_key(image["alt"], image["target"])]).decode()
            body.append(f'<p><img alt="{html.escape(image["alt"])}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
