"""A small etcd v3 client over etcd's JSON gateway: get, put and watch one key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx

from reviewlab_common.topology import Topology


class EtcdError(RuntimeError):
    """etcd did not answer or refused the request."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Etcd:
    def __init__(self, topology: Topology, timeout: float = 2.0) -> None:
        self.urls = [node.url for node in topology.of_kind("etcd")]
        self.timeout = timeout

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        errors = []
        for url in self.urls:
            try:
                reply = httpx.post(f"{url}/v3/{path}", json=body, timeout=self.timeout)
                reply.raise_for_status()
                result: dict[str, object] = reply.json()
                return result
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {exc}")
        raise EtcdError("etcd unavailable: " + "; ".join(errors))

    def get(self, key: str) -> tuple[str, int] | None:
        """The value and mod revision of KEY, or None if it is not set."""
        reply = self._post("kv/range", {"key": _b64(key)})
        kvs = reply.get("kvs")
        if not isinstance(kvs, list) or not kvs:
            return None
        item = kvs[0]
        return base64.b64decode(item["value"]).decode(), int(item["mod_revision"])

    def put(self, key: str, value: str) -> None:
        self._post("kv/put", {"key": _b64(key), "value": _b64(value)})

    def put_if_absent(self, key: str, value: str) -> bool:
        """Create KEY only if it does not exist (a transaction on create_revision == 0)."""
        reply = self._post(
            "kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": "0",
                    }
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        return bool(reply.get("succeeded"))

    def watch(self, key: str, start_revision: int, timeout: float = 60.0) -> Iterator[str]:
        """Yield each new value of KEY as it changes; returns after `timeout` seconds."""
        body = {"create_request": {"key": _b64(key), "start_revision": str(start_revision)}}
        with httpx.stream(
            "POST",
            f"{self.urls[0]}/v3/watch",
            json=body,
            timeout=httpx.Timeout(self.timeout, read=timeout),
        ) as reply:
            for line in reply.iter_lines():
                if not line.strip():
                    continue
                events = json.loads(line).get("result", {}).get("events", [])
                for event in events:
                    kv = event.get("kv", {})
                    if "value" in kv:
                        yield base64.b64decode(kv["value"]).decode()
