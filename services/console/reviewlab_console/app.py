"""The console's HTTP surface: the page, its live stream (SSE), the state as JSON, the charts'
series, the event feed, chaos runs and the guided tour's pages. Errors are the lab's JSON
errors."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from reviewlab_common import secrets as lab_secrets
from starlette.exceptions import HTTPException as StarletteHTTPException

from reviewlab_console import charts, diagram, edgelog, tourpages
from reviewlab_console.chaos import ChaosRefused, ChaosRuns
from reviewlab_console.events import EventBus
from reviewlab_console.poller import Poller
from reviewlab_console.prom import MetricsUnavailable, Prometheus
from reviewlab_console.settings import ConsoleSettings

STATIC = resources.files("reviewlab_console") / "static"
CHART_FILES = {"uPlot.iife.min.js": "application/javascript", "uPlot.min.css": "text/css"}
# How often the stream says it is alive when nothing else happened.
KEEPALIVE_S = 15.0


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = ConsoleSettings()  # type: ignore[call-arg]
    topology = settings.topology()
    node = settings.this_node()
    metrics = topology.of_kind("metrics")
    prometheus = Prometheus(metrics[0].url if metrics else "http://127.0.0.1:1")
    bus = EventBus()
    poller = Poller(topology, prometheus, bus)
    app.state.settings, app.state.topology, app.state.bus = settings, topology, bus
    app.state.prometheus, app.state.poller = prometheus, poller
    app.state.chaos = ChaosRuns(bus, settings.reports)
    app.state.tour = tourpages.TourPages(settings.reports / "tour")
    app.state.svg = diagram.svg(topology)
    transport = None
    if node.stats_port:
        transport = await edgelog.listen(topology, node.address, node.stats_port)
    task = asyncio.create_task(poller.run())
    try:
        yield
    finally:
        task.cancel()
        if transport is not None:
            transport.close()
        await poller.close()
        await prometheus.close()


app = FastAPI(title="Review Lab console", lifespan=lifespan, docs_url=None, redoc_url=None)


@app.exception_handler(StarletteHTTPException)
async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


@app.exception_handler(ChaosRefused)
async def chaos_refused(_: Request, exc: ChaosRefused) -> JSONResponse:
    return error(exc.status, exc.code, exc.message)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    html = (STATIC / "index.html").read_text()
    captions = "".join(f"<li><b>{kind}</b>: {text}</li>" for kind, text in diagram.CAPTIONS.items())
    html = html.replace("{{diagram}}", request.app.state.svg).replace("{{captions}}", captions)
    return HTMLResponse(html)


@app.get("/static/{name}")
async def static(name: str) -> Response:
    types = {"console.js": "application/javascript", "console.css": "text/css"}
    if name not in types:
        return error(404, "not_found", f"no static file {name!r}")
    return Response((STATIC / name).read_text(), media_type=types[name])


@app.get("/vendor/{name}")
async def vendor(request: Request, name: str) -> Response:
    if name not in CHART_FILES:
        return error(404, "not_found", f"no vendored file {name!r}")
    path = request.app.state.settings.charts / name
    if not path.is_file():
        return error(503, "charts_missing", f"{path} is missing: `make setup` vendors the charts")
    return FileResponse(path, media_type=CHART_FILES[name])


@app.get("/api/state")
async def state(request: Request) -> Any:
    latest = request.app.state.poller.latest
    if latest is None:
        latest = await request.app.state.poller.refresh()
    return latest


@app.get("/api/topology")
async def topology_view(request: Request) -> dict[str, Any]:
    topology = request.app.state.topology
    return {
        "nodes": {n.name: {"kind": n.kind, "cluster": n.cluster} for n in topology.nodes.values()},
        "captions": diagram.CAPTIONS,
    }


@app.get("/api/series")
async def series(request: Request, minutes: int = 10) -> Any:
    if not 1 <= minutes <= 15:
        return error(400, "bad_minutes", "minutes: from 1 to 15 (the charts' window)")
    try:
        return await charts.read(request.app.state.prometheus, time.time(), minutes)
    except MetricsUnavailable as exc:
        return error(503, "metrics_unavailable", f"metrics unavailable: {exc}")


@app.get("/api/events")
async def events(request: Request) -> StreamingResponse:
    bus: EventBus = request.app.state.bus
    poller: Poller = request.app.state.poller

    async def stream() -> AsyncIterator[str]:
        queue = bus.listen()
        try:
            yield f"event: history\ndata: {json.dumps(bus.recent())}\n\n"
            if poller.latest is not None:
                yield f"event: state\ndata: {json.dumps(poller.latest)}\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": alive\n\n"
                    continue
                kind = message.pop("type")
                payload = message["state"] if kind == "state" else message
                yield f"event: {kind}\ndata: {json.dumps(payload)}\n\n"
        finally:
            bus.leave(queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _authorized(request: Request) -> bool:
    """The lab's admin secret, as `Authorization: Bearer <secret>`."""
    given = request.headers.get("authorization", "")
    scheme, _, secret = given.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return False
    wanted = lab_secrets.load(request.app.state.topology).admin_secret
    return hmac.compare_digest(secret.strip().encode(), wanted.encode())


def _unauthorized(request: Request) -> JSONResponse:
    where = lab_secrets.secrets_path(request.app.state.topology)
    response = error(
        401,
        "admin_secret_required",
        "this needs the lab's admin secret as `Authorization: Bearer <secret>`: "
        f"the value of admin_secret in {where} on the lab's machine",
    )
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@app.get("/api/chaos")
async def chaos_status(request: Request) -> dict[str, Any]:
    return request.app.state.chaos.status()  # type: ignore[no-any-return]


async def _json_body(
    request: Request, example: str = '{"scenario": "replica-kill"}'
) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return error(400, "bad_json", f"send a JSON object, e.g. {example}")
    if not isinstance(body, dict):
        return error(400, "bad_json", f"send a JSON object, e.g. {example}")
    return body


@app.post("/api/chaos", status_code=202)
async def chaos_start(request: Request) -> Any:
    if not _authorized(request):
        return _unauthorized(request)
    body = await _json_body(request)
    if isinstance(body, JSONResponse):
        return body
    scenario = body.get("scenario")
    if not isinstance(scenario, str) or not scenario:
        return error(400, "scenario_required", "scenario: name one from GET /api/chaos")
    run = await request.app.state.chaos.start(scenario)
    return JSONResponse({"started": run.scenario, "events": "/api/events"}, status_code=202)


@app.post("/api/lab-events", status_code=202)
async def lab_event(request: Request) -> Any:
    """What the lab reports itself: a chaos run's phases (reviewlab_lab.consolefeed)."""
    if not _authorized(request):
        return _unauthorized(request)
    body = await _json_body(request)
    if isinstance(body, JSONResponse):
        return body
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return error(400, "text_required", "text: what happened, as one line")
    if body.get("kind") == "chaos":
        request.app.state.chaos.heard(body)
    request.app.state.bus.note(str(body.get("kind", "lab")), text[:300], body.get("node"))
    return JSONResponse({"noted": True}, status_code=202)


@app.post("/api/tour/{name}", status_code=202)
async def tour_step_ran(request: Request, name: str) -> Any:
    """One step's run, as the tour sends it as the step ends (reviewlab_lab.tour.pages)."""
    if not _authorized(request):
        return _unauthorized(request)
    body = await _json_body(request, example='{"name": "dns", "passed": true, ...}')
    if isinstance(body, JSONResponse):
        return body
    try:
        run = tourpages.received(name, body)
    except tourpages.BadRun as exc:
        return error(400, "bad_tour_step", str(exc))
    request.app.state.tour.keep(run)
    request.app.state.bus.note("tour", f"tour step {name} {'passed' if run.passed else 'failed'}")
    return JSONResponse({"kept": f"/tour/{name}"}, status_code=202)


@app.get("/tour", response_class=HTMLResponse)
async def tour_index(request: Request) -> HTMLResponse:
    return HTMLResponse(request.app.state.tour.index())


@app.get("/tour/{name}", response_class=HTMLResponse)
async def tour_step(request: Request, name: str) -> Response:
    page = request.app.state.tour.page(name)
    if page is None:
        return error(404, "not_found", f"no tour step {name!r}: /tour lists the steps")
    return HTMLResponse(page)


@app.get("/reports/{name}")
async def report(request: Request, name: str) -> Response:
    if "/" in name or not name.startswith("chaos-") or name.startswith("."):
        return error(404, "not_found", f"no report {name!r}")
    path = request.app.state.settings.reports / name
    if not path.is_file():
        return error(404, "not_found", f"no report {name!r} in {path.parent}")
    return FileResponse(path)
