"""The review API: one FastAPI app per web server node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from reviewlab_common import tracing
from reviewlab_common.faults import DelaySwitch

from reviewlab_web import errors, health, methods, telemetry
from reviewlab_web.backends import Backends
from reviewlab_web.reviews import views as reviews_views
from reviewlab_web.settings import WebSettings
from reviewlab_web.shop import views as shop_views


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = WebSettings()  # type: ignore[call-arg]  # REVIEWLAB_NODE comes from the environment
    node = settings.this_node()
    # Before any client is made: the instrumentations wrap the clients' classes.
    tracing.configure(settings.topology(), node)
    backends = Backends.connect(settings.topology(), node)
    backends.open()
    await backends.open_reads()
    app.state.settings = settings
    app.state.backends = backends
    app.state.delay = DelaySwitch(settings.topology(), node.name)
    yield
    await backends.close_reads()
    backends.close()
    tracing.shutdown()


def create_app() -> FastAPI:
    telemetry.configure_logging()
    # Swagger UI and ReDoc are served from the package's own copy under /docs/assets, not from
    # a public CDN: the docs page renders on a machine with no internet access.
    app = FastAPIOffline(
        static_url="/docs/assets",
        title="Review Lab shop API",
        description="Product reviews with photos: sharded, replicated, served through a vIP.",
        # 0.3.0: a cutout is a JPEG and a mask (a breaking change; see docs/api-changes.md).
        version="0.3.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(reviews_views.router)
    app.include_router(shop_views.router)
    app.mount("/shop/assets", StaticFiles(directory=shop_views.ASSETS), name="shop-assets")
    app.add_middleware(methods.MethodHygiene)
    # Outermost: the 405s and 501s of MethodHygiene are logged and counted too.
    app.add_middleware(telemetry.Telemetry)
    telemetry.trace_requests(app)
    return app


app = create_app()
