"""The review API: one FastAPI app per web server node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import ORJSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import Counter, Histogram
from reviewlab_common.faults import DelaySwitch

from reviewlab_web import errors, health, methods
from reviewlab_web.backends import Backends
from reviewlab_web.reviews import views as reviews_views
from reviewlab_web.settings import WebSettings
from reviewlab_web.shop import views as shop_views

REQUESTS = Counter("web_requests_total", "Requests served", ["method", "route", "status"])
LATENCY = Histogram("web_request_seconds", "Request latency", ["method", "route"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = WebSettings()  # type: ignore[call-arg]  # REVIEWLAB_NODE comes from the environment
    node = settings.this_node()
    backends = Backends.connect(settings.topology(), node)
    backends.open()
    app.state.settings = settings
    app.state.backends = backends
    app.state.delay = DelaySwitch(settings.topology(), node.name)
    yield
    backends.close()


def create_app() -> FastAPI:
    # Swagger UI and ReDoc are served from the package's own copy under /docs/assets, not from
    # a public CDN: the docs page renders on a machine with no internet access.
    app = FastAPIOffline(
        static_url="/docs/assets",
        title="Review Lab shop API",
        description="Product reviews with photos: sharded, replicated, served through a vIP.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(reviews_views.router)
    app.include_router(shop_views.router)
    app.mount("/shop/assets", StaticFiles(directory=shop_views.ASSETS), name="shop-assets")
    app.add_middleware(methods.MethodHygiene)

    @app.middleware("http")
    async def served_by(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        delay = request.app.state.delay.delay_seconds()
        if delay and request.url.path.startswith("/api/"):
            await asyncio.sleep(delay)  # a lab-only fault: `reviewlab fault delay NODE MS`
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        response.headers["X-Served-By"] = request.app.state.backends.node.name
        return response

    return app


app = create_app()
