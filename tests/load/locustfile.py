"""Shoppers on the vIP: browse, page through reviews, read one, and post a review with a photo.

Run it with `make load` (headless, a report in reports/) or `make load-ui` (the web UI);
from the repository's root, `PYTHONPATH=. locust -f tests/load/locustfile.py --host <vIP URL>`
works too. Settings from the environment:

  LOAD_SHOPPERS  demo users who post, by handle (kim,alex,sam,noor,loadtest): their tokens are
                 issued from the lab's secrets, like `reviewlab token HANDLE`
  LOAD_TOKENS    bearer tokens instead, comma-separated, for a worker on a machine without the
                 lab's secrets: LOAD_TOKENS=$(reviewlab token loadtest),$(reviewlab token kim)
  LOAD_CDN       the CDN edge's URL (default: the edge the topology names)
  LOAD_THINK_S   think time between tasks, "MIN-MAX" seconds (default 1-4)
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from typing import Any

import httpx
from locust import HttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner
from reviewlab_common import consistency, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.photos import PhotoStatus
from reviewlab_lab import photos, runtimes, users

from tests.load.names import (
    CUTOUT,
    DELETE,
    OWN_VISIBLE,
    PHOTO_STATUS,
    POST,
    PRODUCT,
    READY,
    RECENT,
    REVIEW,
    REVIEWS_PAGE,
)

CONSISTENCY = consistency.HEADER
PRODUCTS = range(1, 51)  # the seeded catalog
PAGE = 10
POLL_S = 0.2
READY_WITHIN_S = 30.0


def shopper_tokens() -> list[str]:
    """Bearer tokens for the posting shoppers: given, or issued from the lab's secrets."""
    given = [t.strip() for t in os.environ.get("LOAD_TOKENS", "").split(",") if t.strip()]
    if given:
        return given
    handles = os.environ.get("LOAD_SHOPPERS", "kim,alex,sam,noor,loadtest").split(",")
    topology = runtimes.activate()
    secret = lab_secrets.load(topology).token_secret
    return [
        tokens.issue(secret, users.user_id(topology, h.strip()), ttl_s=6 * 3600) for h in handles
    ]


def cdn_url() -> str:
    given = os.environ.get("LOAD_CDN")
    if given:
        return given.rstrip("/")
    topology = runtimes.activate()
    return topology.nodes[topology.services["cdn"]].host_url


def think_time() -> tuple[float, float]:
    low, _, high = os.environ.get("LOAD_THINK_S", "1-4").partition("-")
    return float(low), float(high or low)


TOKENS = itertools.cycle(shopper_tokens())
CDN = cdn_url()
THINK = think_time()


@events.init.add_listener  # type: ignore[untyped-decorator]
def vip_must_answer(environment: Environment, **_: Any) -> None:
    """Gate: no load against a lab that is down (checked where the load is steered from)."""
    if isinstance(environment.runner, MasterRunner) or environment.host is None:
        return
    try:
        reply = httpx.get(f"{environment.host}/healthz", timeout=5)
        problem = None if reply.status_code == 200 else f"answered {reply.status_code}"
    except httpx.HTTPError as exc:
        problem = f"did not answer ({exc})"
    if problem:
        raise SystemExit(f"the vIP {environment.host} {problem}: bring the lab up (`make up`)")


class Shopper(HttpUser):
    """Reads far more than it writes; a write is followed by a look at what was written."""

    def wait_time(self) -> float:
        return random.uniform(*THINK)

    def on_start(self) -> None:
        self.token = next(TOKENS)
        self.seen: list[int] = []  # review ids from the listings this shopper paged through
        self.written: list[int] = []

    def on_stop(self) -> None:
        # The load leaves the shop as it found it.
        for review_id in self.written:
            self.client.delete(
                f"/api/reviews/{review_id}",
                headers={"Authorization": f"Bearer {self.token}"},
                name=DELETE,
            )

    @task(10)
    def browse_product(self) -> None:
        self.client.get(f"/api/products/{random.choice(PRODUCTS)}", name=PRODUCT)

    @task(6)
    def page_reviews(self) -> None:
        product_id = random.choice(PRODUCTS)
        cursor: str | None = None
        for _ in range(random.randint(1, 3)):
            params: dict[str, str | int] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            reply = self.client.get(
                f"/api/products/{product_id}/reviews", params=params, name=REVIEWS_PAGE
            )
            if reply.status_code != 200:
                return
            page = reply.json()
            self.seen = [item["id"] for item in page["items"]] or self.seen
            cursor = page["next_cursor"]
            if cursor is None:
                return

    @task(4)
    def open_review(self) -> None:
        if not self.seen:  # the products paged so far had no reviews: the shop's newest
            reply = self.client.get("/api/reviews", params={"limit": PAGE}, name=RECENT)
            if reply.status_code == 200:
                self.seen = [item["id"] for item in reply.json()["items"]]
            if not self.seen:
                return
        self.client.get(f"/api/reviews/{random.choice(self.seen)}", name=REVIEW)

    @task(2)
    def post_review_with_photo(self) -> None:
        product_id = random.choice(PRODUCTS)
        variant = random.choice(photos.VARIANTS)
        data = photos.portrait_as(variant)
        started = time.perf_counter()
        with self.client.post(
            "/api/reviews",
            headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": str(uuid.uuid4())},
            data={
                "product_id": str(product_id),
                "rating": str(random.randint(3, 5)),
                "body": "load",
            },
            files={"photo": (variant.filename, data, variant.content_type)},
            name=POST,
            catch_response=True,
        ) as posted:
            if posted.status_code != 201:
                posted.failure(f"{posted.status_code}: {posted.text[:200]}")
                return
        review_id = int(posted.json()["id"])
        self.written.append(review_id)
        consistency = {CONSISTENCY: posted.headers[CONSISTENCY]}
        self.client.cookies.clear()  # the token header alone must give read-your-writes
        self.own_review_listed(product_id, review_id, consistency)
        photo = self.wait_cutout_ready(review_id, consistency, started)
        if photo:
            # A page showing the cutout loads the photo and its mask.
            for url in (photo["cutout_url"], photo.get("mask_url")):
                if url:
                    self.client.get(f"{CDN}{httpx.URL(url).raw_path.decode()}", name=CUTOUT)

    def own_review_listed(self, product_id: int, review_id: int, token: dict[str, str]) -> None:
        with self.client.get(
            f"/api/products/{product_id}/reviews",
            params={"limit": 100},
            headers=token,
            name=OWN_VISIBLE,
            catch_response=True,
        ) as reply:
            if reply.status_code != 200:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")
            elif review_id not in {int(item["id"]) for item in reply.json()["items"]}:
                reply.failure(f"review {review_id} missing from the next read: no read-your-writes")

    def wait_cutout_ready(
        self, review_id: int, token: dict[str, str], started: float
    ) -> dict[str, Any] | None:
        """Poll the own review until its cutout is ready; its time is a row of its own."""
        limit = started + READY_WITHIN_S
        problem = f"not ready within {READY_WITHIN_S:.0f} s"
        while time.perf_counter() < limit:
            with self.client.get(
                f"/api/reviews/{review_id}", headers=token, name=PHOTO_STATUS, catch_response=True
            ) as reply:
                if reply.status_code != 200:
                    reply.failure(f"{reply.status_code}: {reply.text[:200]}")
                    problem = f"status read failed ({reply.status_code})"
                    break
                photo = reply.json()["photo"]
            if photo["status"] == PhotoStatus.READY:
                self.record_ready(started, None)
                return dict(photo)
            if photo["status"] == PhotoStatus.FAILED:
                problem = f"photo failed: {photo['error']}"
                break
            time.sleep(POLL_S)
        self.record_ready(started, RuntimeError(problem))
        return None

    def record_ready(self, started: float, failure: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="FLOW",
            name=READY,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )
