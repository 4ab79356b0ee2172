"""The load report's server-side section: Markdown rendered as HTML inside Locust's page."""

from __future__ import annotations

from pathlib import Path

from tests.load import run

MARKDOWN = """## The server's side (the run's last 30 s)

### Who served the 12 requests at the vIP (its access log)

| served by | share | requests |
|---|---:|---:|
| web-1 | 50.0% | 6 |
| <web-2> | 50.0% | 6 |

- job stream depth: max 3, at the end 0
"""


def test_the_section_is_html_not_preformatted_markdown(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1>Locust</h1></body></html>")
    run.add_to_html(report, MARKDOWN)
    page = report.read_text()
    section = page[page.index('<section class="server-side">') :]
    assert section.endswith("</section></body></html>")
    assert "<h2>The server's side (the run's last 30 s)</h2>" in section
    assert "<table>" in section and '<td style="text-align:right">6</td>' in section
    assert "<li>job stream depth: max 3, at the end 0</li>" in section
    assert "<pre>" not in section and "|---|" not in section
    assert "&lt;web-2&gt;" in section  # text is escaped, never markup
