"""Step api-404: the web server answers only the routes its API defines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from reviewlab_lab.chaos.load import PRODUCTS
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

# A route the shop never defined, and a defined route asked for a product that does not exist.
UNDEFINED_ROUTE = "/api/coupons"
MISSING_PRODUCT = max(PRODUCTS) * 1000 + 1


@dataclass(frozen=True)
class Answer:
    path: str
    status: int
    content_type: str
    body: dict[str, object]
    served_by: str
    ms: float

    @property
    def error_code(self) -> str:
        error = self.body.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""


@dataclass
class ApiEvidence(Evidence):
    answers: list[Answer] = field(default_factory=list)
    webs: list[str] = field(default_factory=list)


def ask(vip: str, path: str) -> Answer:
    reply = httpx.get(f"{vip}{path}", timeout=10)
    try:
        body = reply.json()
    except ValueError:
        body = {"not JSON": reply.text[:200]}
    return Answer(
        path=path,
        status=reply.status_code,
        content_type=reply.headers.get("content-type", ""),
        body=body if isinstance(body, dict) else {"body": body},
        served_by=reply.headers.get("X-Served-By", "?"),
        ms=reply.elapsed.total_seconds() * 1000,
    )


def run(lab: TourLab) -> ApiEvidence:
    topology = lab.topology
    vip = topology.nodes[topology.services["www"]].host_url
    seen = ApiEvidence(webs=[w.name for w in topology.of_kind("web")])
    for path in (UNDEFINED_ROUTE, f"/api/products/{MISSING_PRODUCT}"):
        answer = ask(vip, path)
        seen.answers.append(answer)
        seen.shown.append(f"GET {vip}{path}")
        seen.shown.append(f"  {answer.status} {answer.content_type}")
        seen.shown.append(f"  {json.dumps(answer.body)}")
        seen.add(f"GET {path}", answer.ms, "ms", f"via the vIP, answered by {answer.served_by}")
    return seen


def check(seen: ApiEvidence) -> str:
    undefined, missing = seen.answers
    for answer in seen.answers:
        require(
            answer.status == 404 and answer.content_type.startswith("application/json"),
            f"GET {answer.path} answered {answer.status} {answer.content_type}, not a 404 in JSON",
        )
        require(
            answer.served_by in seen.webs,
            f"GET {answer.path} was answered by {answer.served_by!r}, not a web server",
        )
    codes = [a.error_code for a in seen.answers]
    require(
        codes == ["http_404", "product_not_found"],
        f"the error codes were {codes}, not http_404 then product_not_found",
    )
    return (
        f"{undefined.path}: 404 http_404 from {undefined.served_by} (no such route); "
        f"{missing.path}: 404 product_not_found from {missing.served_by} (a route, no such row)"
    )


STEP = Step(
    name="api-404",
    title="The web server and its API",
    concept=(
        "A web server answers requests by matching each one to a route its API defines: "
        "GET /api/products/7 is one. A request nobody defined gets 404 Not Found, and so does "
        "a defined route asked for something that does not exist. You will send one of each."
    ),
    claim=(
        "Both answers are 404 with a JSON error from a web server: `http_404` for the route "
        "nobody defined, `product_not_found` for the product that does not exist."
    ),
    saw=(
        "The API is a contract: its routes are listed at /docs (OpenAPI), and everything "
        "else is a clean 404, in the same JSON shape as every other error, so a client can "
        "tell 'no such route' from 'no such product'. X-Served-By names the web server."
    ),
    run=run,
    check=check,
)
