"""The guided tour in the browser, without a lab: what the tour sends as each step ends, how the
console checks and keeps it, and the pages it draws from it (escaped, linked in tour order)."""

from __future__ import annotations

import json
import tomllib
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from reviewlab_common.topology import Topology, parse
from reviewlab_console import tourpages
from reviewlab_console.app import app
from reviewlab_console.events import EventBus
from reviewlab_lab import consolefeed, secretfile, tourcli
from reviewlab_lab.paths import TOPOLOGY_PATH
from reviewlab_lab.tour import pages, registry
from reviewlab_lab.tour.runner import Outcome
from reviewlab_lab.tour.step import Evidence

from tests.unit.test_tour import FakeRuntime

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about the httpx it drives
    from fastapi.testclient import TestClient

RAN_AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
API_404 = registry.step("api-404")


@pytest.fixture()
def topology(tmp_path: Path) -> Topology:
    """The real topology with its data (and so its secrets) in a temporary folder."""
    with TOPOLOGY_PATH.open("rb") as handle:
        real = parse(tomllib.load(handle))
    return replace(real, lab=replace(real.lab, data_dir=tmp_path / "lab"))


@pytest.fixture()
def admin(topology: Topology) -> dict[str, str]:
    return {"Authorization": f"Bearer {secretfile.ensure(topology).admin_secret}"}


@pytest.fixture()
def kept(tmp_path: Path) -> Path:
    return tmp_path / "reports" / "tour"


@pytest.fixture()
def client(topology: Topology, kept: Path) -> TestClient:
    """The console's app without its lifespan (nothing polls, nothing listens)."""
    app.state.topology = topology
    app.state.bus = EventBus()
    app.state.tour = tourpages.TourPages(kept)
    return TestClient(app, raise_server_exceptions=False)


def evidence() -> Evidence:
    seen = Evidence(shown=["GET /api/coupons -> 404", "  <not markup>"])
    seen.add("status of /api/coupons", 404, "", "lb 127.0.0.10:8080")
    seen.add("answered in", 3.25, "ms", "web-2")
    seen.add("p99 before the step", float("nan"), "ms", "metrics")
    return seen


def body(name: str = "api-404", **changes: Any) -> dict[str, Any]:
    """What the tour sends for step NAME: the lab's own report, with CHANGES."""
    step = registry.step(name)
    outcome = Outcome(name, True, "/api/coupons: 404 http_404", 0.42, evidence())
    sent = pages.report(step, outcome, catalogue=registry.STEPS, runtime="native", ran_at=RAN_AT)
    return {**sent, **changes}


# The lab's side: the report, and when it is sent.


def test_the_report_carries_the_step_its_run_and_the_catalogue() -> None:
    sent = body()
    assert {k: sent[k] for k in ("name", "number", "total", "passed", "seconds", "runtime")} == {
        "name": "api-404",
        "number": 2,
        "total": len(registry.STEPS),
        "passed": True,
        "seconds": 0.42,
        "runtime": "native",
    }
    assert (sent["title"], sent["claim"], sent["saw"]) == (
        API_404.title,
        API_404.claim,
        API_404.saw,
    )
    assert sent["repeat"] == "reviewlab tour run api-404"
    assert sent["ran_at"] == "2025-03-04T05:06:07+00:00"
    assert sent["figures"][1] == {
        "label": "answered in",
        "value": 3.25,
        "unit": "ms",
        "where": "web-2",
    }
    assert sent["figures"][2]["value"] == "nan"  # JSON has no NaN
    assert sent["shown"] == ["GET /api/coupons -> 404", "  <not markup>"]
    assert sent["steps"] == [{"name": s.name, "title": s.title} for s in registry.STEPS]
    json.dumps(sent, allow_nan=False)
    assert tourpages.received("api-404", sent).figures[0].value == 404


def test_a_step_that_failed_before_it_saw_anything_is_reported_without_evidence() -> None:
    outcome = Outcome("dns", False, "dig: no answer", 2.0)
    sent = pages.report(
        registry.STEPS[0], outcome, catalogue=registry.STEPS, runtime="compose", ran_at=RAN_AT
    )
    assert (sent["passed"], sent["figures"], sent["shown"]) == (False, [], [])
    assert tourpages.received("dns", sent).verdict == "dig: no answer"


def test_a_lab_without_its_secrets_sends_nothing(topology: Topology) -> None:
    assert consolefeed.send(topology, "/api/tour/dns", body("dns")) is False


def test_a_step_outside_the_tour_is_not_sent(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    def send(*args: Any) -> bool:
        raise AssertionError("sent")

    monkeypatch.setattr(consolefeed, "send", send)
    outcome = Outcome("fake", True, "it held", 0.1, Evidence())
    step = replace(API_404, name="fake")
    assert pages.publish(topology, step, outcome, catalogue=registry.STEPS, runtime="x") is None


@pytest.mark.parametrize("took", [True, False])
def test_the_tour_says_where_each_run_can_be_read_when_the_console_took_it(
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    took: bool,
) -> None:
    from reviewlab_lab import runtimes
    from reviewlab_lab.chaos import run as chaos_run

    monkeypatch.setattr(chaos_run, "lab_is_up", lambda topology: None)
    monkeypatch.setattr(runtimes, "of", lambda topology: FakeRuntime())
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(topology: Topology, path: str, body: dict[str, Any]) -> bool:
        sent.append((path, body))
        return took

    monkeypatch.setattr(consolefeed, "send", send)
    step = replace(API_404, run=lambda lab: evidence(), check=lambda seen: "it held")
    tourcli.walk(topology, [step], interactive=False)
    assert [(path, b["name"], b["number"], b["runtime"]) for path, b in sent] == [
        ("/api/tour/api-404", "api-404", 2, "native")
    ]
    out = capsys.readouterr().out
    line = "   In the browser: http://127.0.0.115:8080/tour/api-404"
    assert (line in out.splitlines()) is took


# The console's side: what it takes.


def test_a_run_needs_the_admin_secret(client: TestClient, admin: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-secret"}):
        reply = client.post("/api/tour/api-404", json=body(), headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "admin_secret_required"
    assert client.get("/tour/api-404").status_code == 404  # nothing was kept


@pytest.mark.parametrize(
    ("path", "sent", "named"),
    [
        ("api-404", body(passed="yes"), "passed:"),
        ("api-404", body(ran_at="2025-03-04T05:06:07"), "ran_at:"),
        ("api-404", body(figures=[{"label": "x", "value": 1, "where": "y"}]), "figures.0.unit:"),
        ("api-404", body(steps=[]), "steps:"),
        ("api-404", body(number=3), "number: step 3 of steps is not 'api-404'"),
        ("api-404", body(total=3), "total: 3, but steps lists"),
        ("api-404", {k: v for k, v in body().items() if k != "verdict"}, "verdict:"),
        ("dns", body(), "name: 'api-404', but the path names 'dns'"),
        ("API_404", body(), "a step's name is 1 to 40 of a-z, 0-9 and -"),
    ],
)
def test_a_bad_run_is_a_400_that_names_the_field(
    client: TestClient, admin: dict[str, str], path: str, sent: dict[str, Any], named: str
) -> None:
    reply = client.post(f"/api/tour/{path}", json=sent, headers=admin)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "bad_tour_step"
    assert named in reply.json()["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_a_400(
    client: TestClient, admin: dict[str, str]
) -> None:
    reply = client.post("/api/tour/dns", content=b"[1, 2]", headers=admin)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "bad_json"


def test_a_run_is_kept_whole_and_noted_in_the_feed(
    client: TestClient, admin: dict[str, str], kept: Path
) -> None:
    reply = client.post("/api/tour/api-404", json=body(passed=False), headers=admin)
    assert reply.status_code == 202
    assert reply.json() == {"kept": "/tour/api-404"}
    assert sorted(p.name for p in kept.iterdir()) == ["_steps.json", "api-404.json"]
    assert json.loads((kept / "api-404.json").read_text())["verdict"] == body()["verdict"]
    assert [e["text"] for e in app.state.bus.recent()] == ["tour step api-404 failed"]


# The pages.


def test_a_steps_page_shows_its_run_escaped(client: TestClient, admin: dict[str, str]) -> None:
    sent = body(verdict="<script>alert(1)</script> & more", passed=False)
    sent["figures"][0]["label"] = "<b>status</b>"
    assert client.post("/api/tour/api-404", json=sent, headers=admin).status_code == 202
    reply = client.get("/tour/api-404")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert "<script>" not in page and "<b>status</b>" not in page
    assert (
        '<p class="outcome fail"><b>FAIL</b> &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>'
        in page
    )
    assert "<td>&lt;b&gt;status&lt;/b&gt;</td><td>404</td><td>lb 127.0.0.10:8080</td>" in page
    assert "<td>answered in</td><td>3.2 ms</td><td>web-2</td>" in page
    assert "<td>nan ms</td>" in page
    assert "<pre>GET /api/coupons -&gt; 404\n  &lt;not markup&gt;</pre>" in page
    assert f"Step 2 of {len(registry.STEPS)}" in page
    assert f"<h2>{API_404.title}</h2>" in page
    assert "<code>reviewlab tour run api-404</code>" in page
    assert "Ran on the native lab at 2025-03-04 05:06:07 UTC; it took 420 ms." in page
    assert '<link rel="stylesheet" href="/static/console.css">' in page


def test_a_passed_step_is_marked_and_says_what_you_just_saw(
    client: TestClient, admin: dict[str, str]
) -> None:
    client.post("/api/tour/api-404", json=body(), headers=admin)
    page = client.get("/tour/api-404").text
    assert '<p class="outcome pass"><b>PASS</b> /api/coupons: 404 http_404</p>' in page
    assert "<h3>What you just saw</h3>" in page


def test_commands_in_the_lesson_are_code_and_still_escaped(
    client: TestClient, admin: dict[str, str]
) -> None:
    sent = body(saw="Drain one (`reviewlab lb set --drain web-3`) & see `<b>`.")
    client.post("/api/tour/api-404", json=sent, headers=admin)
    page = client.get("/tour/api-404").text
    assert "<p>Drain one (<code>reviewlab lb set --drain web-3</code>) &amp; see " in page
    assert "<b>`" not in page and "&lt;b&gt;" in page


def test_a_page_links_the_steps_before_and_after_it(
    client: TestClient, admin: dict[str, str]
) -> None:
    first, second, third = registry.STEPS[:3]
    client.post("/api/tour/api-404", json=body(), headers=admin)
    page = client.get("/tour/api-404").text
    assert f'<a rel="prev" href="/tour/{first.name}">1. {first.title}</a>' in page
    assert f'<a rel="next" href="/tour/{third.name}">3. {third.title}</a>' in page
    assert '<a href="/tour">all steps</a>' in page
    opening = client.get(f"/tour/{first.name}").text
    assert 'rel="prev"' not in opening
    assert f'<a rel="next" href="/tour/{second.name}">' in opening
    closing = client.get(f"/tour/{registry.STEPS[-1].name}").text
    assert 'rel="next"' not in closing


def test_a_step_that_has_not_run_yet_says_how_to_run_it(
    client: TestClient, admin: dict[str, str]
) -> None:
    client.post("/api/tour/api-404", json=body(), headers=admin)
    reply = client.get("/tour/cdn")
    assert reply.status_code == 200
    assert "This step has not run yet" in reply.text
    assert "<code>reviewlab tour run cdn</code>" in reply.text
    assert f"<h2>{registry.step('cdn').title}</h2>" in reply.text


def test_an_unknown_step_is_a_json_404(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/tour/api-404").status_code == 404  # no catalogue yet: no step is known
    client.post("/api/tour/api-404", json=body(), headers=admin)
    for name in ("nope", "_steps", "..%2Fsecrets"):
        reply = client.get(f"/tour/{name}")
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "not_found"


def test_the_index_lists_every_step_with_its_last_run(
    client: TestClient, admin: dict[str, str]
) -> None:
    client.post("/api/tour/api-404", json=body(), headers=admin)
    client.post("/api/tour/dns", json=body("dns", passed=False), headers=admin)
    page = client.get("/tour").text
    for number, step in enumerate(registry.STEPS, 1):
        assert f'<a href="/tour/{step.name}">{number}. {step.title}</a>' in page
    assert page.count('<span class="verdict pass">PASS</span>') == 1
    assert page.count('<span class="verdict fail">FAIL</span>') == 1
    assert page.count('<span class="verdict">not run yet</span>') == len(registry.STEPS) - 2
    assert "2025-03-04 05:06:07 UTC on the native lab" in page


def test_before_any_run_the_index_says_how_to_start(client: TestClient) -> None:
    reply = client.get("/tour")
    assert reply.status_code == 200
    assert "<code>make tour</code>" in reply.text
    assert "<code>reviewlab tour --no-input</code>" in reply.text


def test_the_console_page_links_the_tour() -> None:
    page = (Path(tourpages.__file__).parent / "static" / "index.html").read_text()
    assert '<a class="pill" href="/tour">Guided tour</a>' in page
