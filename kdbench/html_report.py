"""Render leaderboard `TableSection`s as one self-contained, sortable HTML page.

Why self-contained: the page is a CI artefact that people download and open from disk, often offline or
behind a proxy, so it inlines its CSS and JS and references no URL, font, CDN or image.

Why everything is escaped: method, task and column names come from configs and results files that anyone
can edit, so every data string goes through `html.escape(..., quote=True)`. Data never enters the
<script>: each cell's sort number is a `data-sort` attribute the (fixed) script reads from the DOM.

Sorting: click a header (again to reverse), or open `page.html#sort=T:C:asc|desc` to sort table T by
column C on load, which is also how the browser test checks the script without clicking.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from kdbench.tables import TableSection

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h2 { margin-top: 2rem; }
.caption { color: #555; }
table.leaderboard { border-collapse: collapse; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: left; }
td[data-sort] { font-family: ui-monospace, monospace; font-variant-numeric: tabular-nums; text-align: right; }
thead th { position: sticky; top: 0; background: #eee; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #f7f7f7; }
.notes, footer { color: #555; font-size: .9em; }
"""

# Plain DOM code, fixed text: no data is ever interpolated into it.
_JS = """
function kdSort(table, col, desc) {
  var num = function (row) {
    var cell = row.cells[col], v = cell ? cell.getAttribute("data-sort") : null;
    return v === null ? NaN : Number(v);  /* no value, or an unparsable one like "nan": sorts last */
  };
  var text = function (row) { var c = row.cells[col]; return c ? c.textContent : ""; };
  var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = num(a), y = num(b), xn = !isNaN(x), yn = !isNaN(y);
    if (xn && yn) return desc ? y - x : x - y;
    if (xn !== yn) return xn ? -1 : 1;  /* rows without a number go last in both directions */
    var t = text(a).localeCompare(text(b));
    return desc ? -t : t;
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    if (i === col) th.setAttribute("aria-sort", desc ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  });
}
var kdTables = document.querySelectorAll("table.leaderboard");
Array.prototype.forEach.call(kdTables, function (table) {
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    var toggle = function () { kdSort(table, i, th.getAttribute("aria-sort") === "ascending"); };
    th.addEventListener("click", toggle);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
    });
  });
});
function kdSortFromHash() {
  var m = /sort=(\\d+):(\\d+)(?::(asc|desc))?/.exec(location.hash);
  var table = m && kdTables[Number(m[1])];
  if (table && Number(m[2]) < table.tHead.rows[0].cells.length) kdSort(table, Number(m[2]), m[3] === "desc");
}
kdSortFromHash();
window.addEventListener("hashchange", kdSortFromHash);
"""


def _e(text: str) -> str:
    return escape(str(text), quote=True)


def _cell(text: str, value: float | None) -> str:
    attr = "" if value is None else f' data-sort="{_e(repr(float(value)))}"'
    return f"<td{attr}>{_e(text)}</td>"


def _links(links: list[tuple[str, str]], base) -> str:
    """Links to saved students' model cards, relative to the page's folder so the folder can move whole."""
    if not links:
        return ""
    anchors = ", ".join(f'<a href="{_e(Path(os.path.relpath(path, base)).as_posix())}">{_e(label)}</a>'
                        for label, path in links)
    return f' <span class="students">(students: {anchors})</span>'


def _section(section: TableSection, base=".") -> str:
    parts = [f"<h2>{_e(section.title)}</h2>"]
    if section.caption:
        parts.append(f'<p class="caption">{_e(section.caption)}</p>')
    head = "".join(f'<th scope="col" tabindex="0">{_e(c)}</th>' for c in section.columns)
    body = []
    for i, row in enumerate(section.rows):
        values = section.sort_values[i] if i < len(section.sort_values) else []
        # A missing sort value just means "not sortable by number", never an error in a report.
        cells = [_cell(text, values[j] if j < len(values) else None) for j, text in enumerate(row)]
        if i < len(section.links) and section.links[i] and cells:
            cells[0] = cells[0][: -len("</td>")] + _links(section.links[i], base) + "</td>"
        body.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(
        f'<table class="leaderboard">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )
    if section.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in section.notes) + "</ul>")
    return "\n".join(parts)


def render_html(title: str, sections: list[TableSection], footer: str = "", base=".") -> str:
    """One complete HTML5 document: a heading, one sortable table per section, an optional footer; links to
    saved students' model cards are relative to `base`, the folder the page is written to."""
    body = "\n".join(_section(s, base) for s in sections)
    foot = f"\n<footer><p>{_e(footer)}</p></footer>" if footer else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n{body}{foot}\n<script>{_JS}</script>\n</body>\n</html>\n"
    )
