"""The HTML leaderboard: escaping and self-containment as strings, sorting in a real headless Chromium."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from kdbench.html_report import render_html
from kdbench.tables import TableSection

EVIL = "<script>alert(1)</script>"
COLUMNS = ["Method", "Params", "SST-2", "MNLI"]
# Original order deliberately differs from the SST-2 (column 2) order, and one row has no SST-2 value.
ROWS = [
    (["kd", "66M", "80.6 ± 1.2 (n=3)", "75.0"], [None, 66.0, 80.6, 75.0]),
    (["fitnet", "66M", "–", "74.1"], [None, 66.0, None, 74.1]),
    ([EVIL, "22M", "91.2", "70.0"], [None, 22.0, 91.2, 70.0]),
    (["dkd", "66M", "85.0", "76.3"], [None, 66.0, 85.0, 76.3]),
]


def sections() -> list[TableSection]:
    main = TableSection(
        title="GLUE", caption="dev accuracy, mean ± std", columns=COLUMNS,
        rows=[r for r, _ in ROWS], sort_values=[v for _, v in ROWS], notes=["– = not run"],
    )
    # A second table the fragment must leave alone (it targets table 0 only).
    other = TableSection(
        title="Other", caption="", columns=["Method", "Score"],
        rows=[["b", "1"], ["a", "2"]], sort_values=[[None, 1.0], [None, 2.0]],
    )
    return [main, other]


def page() -> str:
    return render_html('Leaderboard &"<>', sections(), footer="built by <ci>")


# --- string checks, no browser ---


def test_data_is_escaped():
    html = page()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "<title>Leaderboard &amp;&quot;&lt;&gt;</title>" in html
    assert "<h1>Leaderboard &amp;&quot;&lt;&gt;</h1>" in html
    assert "built by &lt;ci&gt;" in html
    assert html.count("<script>") == 1  # only the page's own script


def test_no_external_resources():
    html = page().lower()
    for needle in ("http://", "https://", "src=", "@import", "url("):
        assert needle not in html


def test_data_sort_attributes():
    html = page()
    assert '<td data-sort="80.6">80.6 ± 1.2 (n=3)</td>' in html
    assert "<td>–</td>" in html  # None: no attribute at all
    assert "<td>kd</td>" in html
    assert html.count("data-sort=") == sum(v is not None for _, vs in ROWS for v in vs) + 2


def test_structure():
    html = page()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('<table class="leaderboard">') == 2
    assert '<p class="caption">dev accuracy, mean ± std</p>' in html
    assert html.count('<ul class="notes">') == 1


# --- headless Chromium: the page's own script sorts the DOM ---


class _Tables(HTMLParser):
    """Collects each table's header texts (with aria-sort) and body rows' cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self.scripts = [], 0
        self._cell, self._row = None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "table":
            self.tables.append({"head": [], "aria": [], "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td"):
            self._cell = []
            if tag == "th":
                self.tables[-1]["aria"].append(attrs.get("aria-sort"))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            text, self._cell = "".join(self._cell), None
            (self.tables[-1]["head"] if tag == "th" else self._row).append(text)
        elif tag == "tr" and self._row:
            self.tables[-1]["rows"].append(self._row)
            self._row = []


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("KDBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail("no Chromium on PATH but KDBENCH_REQUIRE_BROWSER=1; .ci/run installs the Debian package `chromium`")
    pytest.skip("chromium not installed")


def _rendered(tmp_path, fragment: str) -> _Tables:
    browser = _chromium()
    file = tmp_path / "page.html"
    file.write_text(page(), encoding="utf-8")
    # Container-friendly flags: no sandbox (no user namespaces), /tmp instead of a small /dev/shm,
    # and a throwaway profile and HOME so nothing is written to the real home directory.
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", file.as_uri() + fragment,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0 and "</table>" in done.stdout, done.stderr[-2000:]
    parsed = _Tables()
    parsed.feed(done.stdout)
    return parsed


@pytest.mark.parametrize(
    ("fragment", "order", "aria"),
    [
        ("", ["kd", "fitnet", EVIL, "dkd"], None),
        ("#sort=0:2:desc", [EVIL, "dkd", "kd", "fitnet"], "descending"),
        ("#sort=0:2:asc", ["kd", "dkd", EVIL, "fitnet"], "ascending"),  # no value stays last
    ],
    ids=["original", "desc", "asc"],
)
def test_browser_sorts_from_fragment(tmp_path, fragment, order, aria):
    dom = _rendered(tmp_path, fragment)
    assert dom.scripts == 1  # the escaped cell did not become a script element
    main, other = dom.tables
    assert main["head"] == COLUMNS
    assert [row[0] for row in main["rows"]] == order  # the escaped cell shows as literal text
    assert main["aria"] == [None, None, aria, None]
    assert [row[0] for row in other["rows"]] == ["b", "a"]
