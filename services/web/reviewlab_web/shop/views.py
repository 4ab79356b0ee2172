"""The shop page at `/`: HTML for people; the JSON API stays under /api."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from reviewlab_common import tracing

from reviewlab_web import consistency
from reviewlab_web.deps import BackendsDep, ConsistencyDep
from reviewlab_web.reviews import service as reviews
from reviewlab_web.reviews.views import read_from
from reviewlab_web.shop import service

HERE = Path(__file__).parent
ASSETS = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
REVIEWS_PER_PRODUCT = 3

# Not in the OpenAPI document: the page is not part of the API.
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def shop_page(
    request: Request,
    backends: BackendsDep,
    positions: ConsistencyDep,
    posted: Annotated[int | None, Query(ge=1, description="the review just posted")] = None,
) -> HTMLResponse:
    """Products and their newest reviews, read with the visitor's consistency token."""
    shelf = service.shelf(
        backends,
        per_product=REVIEWS_PER_PRODUCT,
        min_lsns=positions,
        posted=posted,
    )
    page = TEMPLATES.TemplateResponse(
        request,
        "shop.html",
        {
            "shelf": shelf,
            "served_by": backends.node.name,
            "consistency": consistency.render(positions),
            "posted": posted,
            "demo_user": service.DEMO_USER,
            "demo_token": service.demo_token(backends),
            "demo_token_minutes": service.DEMO_TOKEN_TTL_S // 60,
            "cdn_media": reviews.cdn_url(backends, ""),
            # Each review links the trace UI's search for its POST's trace (tracing on only).
            "trace_of": (
                partial(tracing.review_search_url, backends.topology)
                if tracing.enabled(backends.topology)
                else None
            ),
        },
    )
    read_from(page, shelf.sources)
    # The page carries a bearer token: no cache anywhere may keep it.
    page.headers["Cache-Control"] = "no-store"
    return page
