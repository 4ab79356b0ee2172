"""Prometheus's HTTP API, as the console reads it: targets, instant and range queries.

Every call is bounded (a second) and any failure is MetricsUnavailable, which the console
shows as "metrics unavailable" instead of failing the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT_S = 1.0


class MetricsUnavailable(RuntimeError):
    """Prometheus did not answer, or answered with an error."""


@dataclass(frozen=True)
class Target:
    """One scrape target: whose figures (node), who answers (via), and how it went."""

    node: str
    via: str
    kind: str
    health: str  # "up", "down", "unknown" (not scraped yet)
    last_error: str


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S)
        # Requests made, for the refresh cost the console reports on /metrics.
        self.requests = 0

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        self.requests += 1
        try:
            reply = await self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            message = f"Prometheus at {self.base_url} did not answer: {exc!r}"
            raise MetricsUnavailable(message) from exc
        try:
            document = reply.json()
        except ValueError:
            document = {}
        if reply.status_code != 200 or document.get("status") != "success":
            error = document.get("error") or reply.text[:200]
            raise MetricsUnavailable(f"Prometheus answered {reply.status_code}: {error}")
        return document["data"]

    async def targets(self) -> list[Target]:
        data = await self._get("/api/v1/targets", {"state": "active"})
        return [parse_target(t) for t in data.get("activeTargets", [])]

    async def query(self, expr: str) -> list[Sample]:
        data = await self._get("/api/v1/query", {"query": expr})
        return [Sample(dict(r["metric"]), float(r["value"][1])) for r in data.get("result", [])]

    async def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"}
        data = await self._get("/api/v1/query_range", params)
        return list(data.get("result", []))

    async def close(self) -> None:
        await self.client.aclose()


def parse_target(raw: dict[str, Any]) -> Target:
    labels = raw.get("labels", {})
    return Target(
        node=str(labels.get("node", "")),
        via=str(labels.get("via", "")),
        kind=str(labels.get("kind", "")),
        health=str(raw.get("health", "unknown")),
        last_error=str(raw.get("lastError", "")),
    )
