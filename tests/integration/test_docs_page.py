"""The API docs page renders in a real browser with no internet: its assets come from the lab."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from reviewlab_common.topology import Topology

from tests.conftest import deadline
from tests.integration.browser import Browser
from tests.integration.shop import KIM, auth, marker, rows_with_body

POST_REVIEW = "#operations-reviews-post_review_api_reviews_post"
DELETE_REVIEW = "#operations-reviews-delete_review_api_reviews__review_id__delete"
PRODUCT = 12


def rendered_docs(vip: str) -> str:
    """/docs after headless Chromium ran its scripts; every host but the vIP fails to resolve."""
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is not installed: run `make setup`"
    host = urlsplit(vip).hostname
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # the tests run as root
            "--disable-gpu",
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{vip}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=deadline(60),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_docs_page_renders_every_operation_offline(vip: str) -> None:
    dom = rendered_docs(vip)
    operations = set(re.findall(r'class="opblock opblock-(\w+)[^"]*".*?data-path="([^"]+)"', dom))
    assert ("post", "/api/reviews") in operations, dom[:2000]
    assert ("get", "/api/reviews/{review_id}") in operations
    assert ("delete", "/api/reviews/{review_id}") in operations
    documented = httpx.get(f"{vip}/openapi.json", timeout=5).json()["paths"]
    count = sum(len(methods) for methods in documented.values())
    assert len(operations) == count, sorted(operations)


def test_the_docs_page_loads_nothing_from_another_host(vip: str) -> None:
    page = httpx.get(f"{vip}/docs", timeout=5)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/docs/assets/") for asset in assets), assets
    for asset in assets:
        reply = httpx.get(f"{vip}{asset}", timeout=5)
        assert reply.status_code == 200, asset
        assert len(reply.content) > 1000, asset


@pytest.fixture()
def docs(topology: Topology, tmp_path: Path) -> Iterator[tuple[Browser, str]]:
    """Chromium on /docs through the vIP, by the shop's public name (nothing else resolves)."""
    www = topology.nodes[topology.services["www"]]
    opened = Browser(tmp_path / "profile", {topology.fqdn("www"): www.host_address})
    yield opened, f"http://{topology.fqdn('www')}:{www.port}/docs"
    opened.close()


def click(browser: Browser, selector: str) -> None:
    browser.wait_for(f"!!document.querySelector({json.dumps(selector)})", within=10, what=selector)
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def type_into(browser: Browser, selector: str, text: str) -> None:
    """Replace the field's text as a user typing does (Swagger UI's React sees the input)."""
    browser.wait_for(f"!!document.querySelector({json.dumps(selector)})", within=10, what=selector)
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
    browser.call("Input.insertText", text=text)
    # Swagger UI debounces its inputs; leaving the field hands the value over at once.
    browser.evaluate("document.activeElement.blur()")


def try_it_out(browser: Browser, operation: str, fields: dict[str, str]) -> str:
    """Open OPERATION, fill its fields, press Execute; the status code the page shows."""
    click(browser, f"{operation} .opblock-summary-control")
    click(browser, f"{operation} .try-out__btn")
    for selector, value in fields.items():
        type_into(browser, f"{operation} {selector}", value)
    click(browser, f"{operation} .execute")
    status = f"{operation} .live-responses-table tbody .response-col_status"
    shown = browser.wait_for(
        f"document.querySelector({json.dumps(status)})?.textContent.trim()",
        within=20,
        what=f"the response to {operation}",
    )
    return str(shown)


def test_the_docs_page_signs_in_posts_a_review_and_deletes_it(
    topology: Topology,
    vip: str,
    docs: tuple[Browser, str],
    token_for: Callable[[int], str],
) -> None:
    browser, url = docs
    body = marker("posted from the docs page")
    browser.navigate(url)
    click(browser, ".btn.authorize")
    type_into(browser, "#auth-bearer-value", token_for(KIM))
    click(browser, ".auth-btn-wrapper button[type=submit]")
    click(browser, ".auth-btn-wrapper .btn-done")
    assert browser.wait_for(
        "!!document.querySelector('.btn.authorize.locked')", within=5, what="signed in"
    )

    posted = try_it_out(
        browser,
        POST_REVIEW,
        {
            "tr[data-property-name=product_id] input": str(PRODUCT),
            "tr[data-property-name=rating] input": "5",
            "tr[data-property-name=body] input": body,
        },
    )
    written = [
        r.headers["location"].rsplit("/", 1)[1]
        for r in browser.responses()
        if r.kind == "Fetch" and r.url.endswith("/api/reviews") and r.status == 201
    ]
    try:
        assert posted == "201", browser.evaluate(
            f"document.querySelector('{POST_REVIEW} .live-responses-table').textContent"
        )
        curl = browser.evaluate(f"document.querySelector('{POST_REVIEW} .curl-command').innerText")
        assert "Authorization: Bearer " in curl, curl
        assert len(written) == 1 and sum(rows_with_body(topology, body).values()) == 1

        deleted = try_it_out(
            browser, DELETE_REVIEW, {"tr[data-param-name=review_id] input": written[0]}
        )
        assert deleted == "204"
        assert sum(rows_with_body(topology, body).values()) == 0
    finally:  # whatever failed, the test leaves nothing behind
        for review_id in written:
            httpx.delete(f"{vip}/api/reviews/{review_id}", headers=auth(token_for(KIM)), timeout=10)
