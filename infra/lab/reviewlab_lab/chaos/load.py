"""Steady reads and writes through the vIP, every request recorded for the report.

Writers post text reviews with an Idempotency-Key; a write that failed is retried with the
same key, so a write that was kept after all must not appear twice. Readers read products
(the catalog) and product reviews (the shards).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import httpx
from reviewlab_common import consistency, shards, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

# The seeded demo user the load writes as, and the seeded products it reads and reviews.
LOAD_USER = 5
PRODUCTS = range(1, 51)
# A client gives up on one request after this long: a hang counts as a failure.
REQUEST_TIMEOUT_S = 10.0
# Each thread waits this long between requests: a steady load, not a benchmark.
PACE_S = 0.05
# With photos, one more writer posts a review with a photo this often (a segmentation job).
PHOTO_PACE_S = 1.0
CONSISTENCY = consistency.HEADER


@dataclass(frozen=True)
class Outcome:
    """One request: when it ended (seconds since the run began), what it was, how it went."""

    at: float
    kind: str  # "read" or "write"
    shard: str  # the cluster it was for: catalog, reviews-0, ...
    ok: bool
    status: int  # HTTP status, 0 when no reply came
    latency: float
    review_id: int | None = None
    key: str = ""
    error: str = ""
    # A read the client sent a second time after it got no answer (Load.read_retry_s).
    retried: bool = False


@dataclass
class Load:
    """Writer and reader threads; outcomes accumulate in order of completion."""

    topology: Topology
    writers: int
    readers: int
    photos: bool = False
    # A reader that gets no answer at all (refused, reset, timed out) sends the read once
    # more this long after, as a client of a floating vIP does; None: it never does.
    read_retry_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    outcomes: list[Outcome] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.photo_reviews: dict[int, str] = {}  # review id -> its consistency token
        shard_map = shards.ShardMap(self.topology)
        self.shard_of = {p: shard_map.shard_for_product(p) for p in PRODUCTS}
        secret = lab_secrets.load(self.topology).token_secret
        self.token = tokens.issue(secret, LOAD_USER, ttl_s=3600)
        www = self.topology.nodes[self.topology.services["www"]]
        self.vip = www.host_url

    def now(self) -> float:
        return time.monotonic() - self.started

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def start(self) -> None:
        self.started = time.monotonic()  # the run's clock starts with its load
        for number in range(self.writers):
            self._spawn(self._write_loop, number)
        for number in range(self.readers):
            self._spawn(self._read_loop, number)
        if self.photos:
            self._spawn(self._photo_loop, 0)

    def _spawn(self, target: object, number: int) -> None:
        thread = threading.Thread(target=target, args=(number,), daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 2)

    def body(self, key: str) -> str:
        return f"chaos {self.run_id} {key}"

    def _write_loop(self, number: int) -> None:
        # Each writer keeps to one shard, so a write stuck on one shard never delays another's.
        shard_names = sorted(set(self.shard_of.values()))
        shard = shard_names[number % len(shard_names)]
        mine = [p for p in PRODUCTS if self.shard_of[p] == shard]
        products = itertools.cycle(mine[number // len(shard_names) :: 1] or mine)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.vip, timeout=REQUEST_TIMEOUT_S) as http:
            key, product = "", 0
            while not self._stop.is_set():
                if not key:  # a failed write is retried with the same key and body
                    key, product = f"{self.run_id}-{number}-{uuid.uuid4().hex[:8]}", next(products)
                form = {"product_id": str(product), "rating": "4", "body": self.body(key)}
                begun = time.monotonic()
                status, review_id, error = 0, None, ""
                try:
                    reply = http.post(
                        "/api/reviews", data=form, headers={**headers, "Idempotency-Key": key}
                    )
                    status = reply.status_code
                    if status == 201:
                        review_id = int(reply.json()["id"])
                    else:
                        error = reply.text[:200]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:200]
                ok = review_id is not None
                self._record(
                    Outcome(
                        self.now(),
                        "write",
                        self.shard_of[product],
                        ok,
                        status,
                        time.monotonic() - begun,
                        review_id,
                        key,
                        error,
                    )
                )
                if ok:
                    key = ""
                self._stop.wait(PACE_S)

    def _read_loop(self, number: int) -> None:
        products = itertools.cycle(list(PRODUCTS)[number::3])
        with httpx.Client(base_url=self.vip, timeout=REQUEST_TIMEOUT_S) as http:
            for turn in itertools.count():
                if self._stop.is_set():
                    return
                product = next(products)
                # Alternate the catalog (product) and the product's review shard.
                catalog = turn % 2 == 0
                path = f"/api/products/{product}" + ("" if catalog else "/reviews?limit=5")
                shard = "catalog" if catalog else self.shard_of[product]
                begun = time.monotonic()
                (code, error), retried = self._get(http, path), False
                if code == 0 and self.read_retry_s is not None:
                    self._stop.wait(self.read_retry_s)
                    (code, error), retried = self._get(http, path), True
                outcome = Outcome(
                    self.now(), "read", shard, code == 200, code, time.monotonic() - begun
                )
                self._record(replace(outcome, error=error, retried=retried))
                self._stop.wait(PACE_S)

    @staticmethod
    def _get(http: httpx.Client, path: str) -> tuple[int, str]:
        """One GET: its status (0 when no answer came) and what went wrong, if anything."""
        try:
            reply = http.get(path)
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}"[:200]
        return reply.status_code, "" if reply.status_code == 200 else reply.text[:200]

    def _photo_loop(self, number: int) -> None:
        from reviewlab_lab import photos

        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.vip, timeout=REQUEST_TIMEOUT_S) as http:
            for product in itertools.cycle(list(PRODUCTS)):
                if self._stop.is_set():
                    return
                key = f"{self.run_id}-photo-{uuid.uuid4().hex[:8]}"
                form = {"product_id": str(product), "rating": "5", "body": self.body(key)}
                image = {"photo": ("photo.jpg", photos.portrait(key), "image/jpeg")}
                begun = time.monotonic()
                status, review_id, error = 0, None, ""
                try:
                    reply = http.post("/api/reviews", data=form, files=image, headers=headers)
                    status = reply.status_code
                    if status == 201:
                        review_id = int(reply.json()["id"])
                        self.photo_reviews[review_id] = reply.headers.get(CONSISTENCY, "")
                    else:
                        error = reply.text[:200]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:200]
                latency = time.monotonic() - begun
                shard = self.shard_of[product]
                outcome = Outcome(
                    self.now(), "photo", shard, review_id is not None, status, latency
                )
                self._record(replace(outcome, review_id=review_id, key=key, error=error))
                self._stop.wait(PHOTO_PACE_S)

    def photo_jobs(self, within: float) -> dict[str, int]:
        """Wait (up to WITHIN seconds) for every posted photo's job to end; count how each did."""
        limit = time.monotonic() + within
        states: dict[int, str] = dict.fromkeys(self.photo_reviews, "processing")
        with httpx.Client(base_url=self.vip, timeout=REQUEST_TIMEOUT_S) as http:
            while time.monotonic() < limit:
                for review_id, state in states.items():
                    if state != "processing":
                        continue
                    token = self.photo_reviews[review_id]
                    reply = http.get(f"/api/reviews/{review_id}", headers={CONSISTENCY: token})
                    if reply.status_code == 200:
                        states[review_id] = reply.json()["photo"]["status"]
                if all(state != "processing" for state in states.values()):
                    break
                time.sleep(1)
        counts = {"posted": len(states), "ready": 0, "failed": 0, "processing": 0}
        for state in states.values():
            counts[state] = counts.get(state, 0) + 1
        return counts

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)
