"""The guided tour in the browser against the running lab: a step run from the CLI shows on the
console's /tour pages with its verdict and what it measured; the console takes a run from the
lab only."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import runtimes

# The quickest step: two requests through the vIP, nothing changed on the lab.
STEP = "api-404"


@pytest.fixture(scope="module")
def ran(topology: Topology) -> dict[str, object]:
    """`reviewlab tour run api-404`, once, with when it started and what it printed."""
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    done = subprocess.run(
        [sys.executable, "-m", "reviewlab_lab.cli", "tour", "run", STEP],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return {"started": started, "done": done}


def test_the_cli_says_where_the_run_can_be_read(topology: Topology, ran: dict[str, object]) -> None:
    done = ran["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stderr
    page = f"{topology.nodes['console'].host_url}/tour/{STEP}"
    assert f"   In the browser: {page}" in done.stdout.splitlines()


def test_the_steps_page_shows_its_last_run(
    topology: Topology, console: httpx.Client, ran: dict[str, object]
) -> None:
    reply = console.get(f"/tour/{STEP}")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert '<p class="outcome pass"><b>PASS</b> /api/coupons: 404 http_404 from web-' in page
    # A figure it measured: the time of the undefined route's answer, and where.
    assert re.search(
        r"<td>GET /api/coupons</td><td>[\d.,]+ ms</td><td>via the vIP, answered by web-\d+</td>",
        page,
    ), page
    assert "<code>reviewlab tour run api-404</code>" in page
    # This run's, not an older one's.
    when = re.search(r"Ran on the (\S+) lab at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", page)
    assert when is not None, page
    assert when.group(1) == runtimes.of(topology).name
    ran_at = datetime.strptime(when.group(2), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    started = ran["started"]
    assert isinstance(started, datetime)
    assert ran_at >= started


def test_the_index_links_the_step_with_its_verdict(
    console: httpx.Client, ran: dict[str, object]
) -> None:
    page = console.get("/tour").text
    row = re.search(rf'<tr><td><a href="/tour/{STEP}">2\. [^<]+</a></td><td>(.*?)</td>', page)
    assert row is not None, page
    assert row.group(1) == '<span class="verdict pass">PASS</span>'


def test_the_console_takes_a_run_from_the_lab_only(console: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-secret"}):
        reply = console.post(f"/api/tour/{STEP}", json={"name": STEP}, headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "admin_secret_required"


def test_an_unknown_step_is_a_404(console: httpx.Client) -> None:
    reply = console.get("/tour/no-such-step")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
