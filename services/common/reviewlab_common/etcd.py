"""A small etcd v3 client over etcd's JSON gateway: get, put and watch one key, as a user.

etcd runs with authentication on (provision.py): every request carries the token that
/v3/auth/authenticate gave for the user's password from the lab's secrets. Before auth is
enabled (the first `reviewlab up`), the same client works without a token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Literal

import httpx

from reviewlab_common import httpclient
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

# root: provisioning (users, roles, auth enable, the shard map); patroni: its clusters' keys;
# web: reads and watches the shard map.
EtcdUser = Literal["root", "patroni", "web"]
PATRONI_ETCD_USER: EtcdUser = "patroni"
# Patroni keeps each cluster's keys under <namespace><scope>/.
PATRONI_NAMESPACE = "/reviewlab/"

AUTH_NOT_ENABLED = "authentication is not enabled"
# etcd's answers when a request carries no token, or one it no longer knows (e.g. after a restart).
TOKEN_REFUSED = ("user name is empty", "invalid auth token")


class EtcdError(RuntimeError):
    """etcd did not answer or refused the request."""


def b64(text: str) -> str:
    """Keys and values travel base64-encoded through etcd's JSON gateway."""
    return base64.b64encode(text.encode()).decode()


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with PREFIX (etcd's convention)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _message(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text.strip()
    return str(body.get("message") or body.get("error") or body)


class Etcd:
    def __init__(
        self,
        topology: Topology,
        user: EtcdUser = "web",
        timeout: float = 2.0,
        *,
        secrets: lab_secrets.LabSecrets | None = None,
    ) -> None:
        """A client for USER; the default is the least privileged one (read the shard map)."""
        self.urls = [node.url for node in topology.of_kind("etcd")]
        self.timeout = timeout
        self.user = user
        self.password = (secrets or lab_secrets.load(topology)).etcd_password(user)
        self._token: str | None = None

    def _send(self, url: str, path: str, body: dict[str, object]) -> httpx.Response:
        headers = {"Authorization": self._token} if self._token else {}
        # The process's kept client: a new one per call cost a TLS context (25 ms of CPU),
        # which a shard move's flip paid inside its write freeze.
        return httpclient.shared().post(
            f"{url}/v3/{path}", json=body, headers=headers, timeout=self.timeout
        )

    def authenticate(self, url: str) -> bool:
        """Get a token for this client's user: True, or False while etcd has auth disabled."""
        reply = httpclient.shared().post(
            f"{url}/v3/auth/authenticate",
            json={"name": self.user, "password": self.password},
            timeout=self.timeout,
        )
        if reply.status_code == 200:
            self._token = str(reply.json()["token"])
        elif AUTH_NOT_ENABLED in _message(reply):
            self._token = None
        else:
            raise EtcdError(f"etcd refused user {self.user!r}: {_message(reply)}")
        return self._token is not None

    def call(self, path: str, body: dict[str, object]) -> dict[str, object]:
        """POST /v3/PATH as this client's user; authenticates again once if the token is refused."""
        errors = []
        for url in self.urls:
            try:
                reply = self._send(url, path, body)
                if reply.status_code != 200 and any(r in _message(reply) for r in TOKEN_REFUSED):
                    self.authenticate(url)
                    reply = self._send(url, path, body)
                if reply.status_code != 200:
                    raise EtcdError(f"etcd refused {path} as {self.user!r}: {_message(reply)}")
                result: dict[str, object] = reply.json()
                return result
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {exc}")
        raise EtcdError("etcd unavailable: " + "; ".join(errors))

    def get(self, key: str) -> tuple[str, int] | None:
        """The value and mod revision of KEY, or None if it is not set."""
        reply = self.call("kv/range", {"key": b64(key)})
        kvs = reply.get("kvs")
        if not isinstance(kvs, list) or not kvs:
            return None
        item = kvs[0]
        return base64.b64decode(item["value"]).decode(), int(item["mod_revision"])

    def put(self, key: str, value: str) -> None:
        self.call("kv/put", {"key": b64(key), "value": b64(value)})

    def put_if_absent(self, key: str, value: str) -> bool:
        """Create KEY only if it does not exist (a transaction on create_revision == 0)."""
        reply = self.call(
            "kv/txn",
            {
                "compare": [
                    {
                        "key": b64(key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": "0",
                    }
                ],
                "success": [{"request_put": {"key": b64(key), "value": b64(value)}}],
            },
        )
        return bool(reply.get("succeeded"))

    def txn(
        self, compare: list[dict[str, object]], success: list[dict[str, object]]
    ) -> tuple[bool, int]:
        """One etcd transaction: SUCCESS's requests if every COMPARE holds, atomically.
        Whether it held, and the store's revision after it."""
        reply = self.call("kv/txn", {"compare": compare, "success": success})
        header = reply.get("header")
        revision = int(header.get("revision", 0)) if isinstance(header, dict) else 0
        return bool(reply.get("succeeded")), revision

    def watch(
        self, key: str, start_revision: int, timeout: float = 60.0
    ) -> Iterator[tuple[str, int]]:
        """Yield each new value of KEY and its mod revision as it changes; returns after
        `timeout` seconds."""
        url = self.urls[0]
        self.authenticate(url)  # a watch stream cannot be retried in place: start it with a token
        body = {"create_request": {"key": b64(key), "start_revision": str(start_revision)}}
        headers = {"Authorization": self._token} if self._token else {}
        with httpx.stream(
            "POST",
            f"{url}/v3/watch",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, read=timeout),
        ) as reply:
            for line in reply.iter_lines():
                if not line.strip():
                    continue
                message = json.loads(line)
                if "error" in message:
                    raise EtcdError(f"etcd ended the watch on {key}: {message['error']}")
                result = message.get("result", {})
                if result.get("canceled"):
                    reason = result.get("cancel_reason", "canceled")
                    raise EtcdError(f"etcd ended the watch on {key}: {reason}")
                for event in result.get("events", []):
                    kv = event.get("kv", {})
                    if "value" in kv:
                        yield base64.b64decode(kv["value"]).decode(), int(kv["mod_revision"])
