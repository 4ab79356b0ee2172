"""The API docs page renders in a real browser with no internet: its assets come from the lab."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlsplit

import httpx

from tests.conftest import deadline


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
