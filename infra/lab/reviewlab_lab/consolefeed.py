"""What the lab tells the console as it happens, for its event feed: a chaos run's phases, a
shard move's start and end. The tour's steps go by `send` too (reviewlab_lab.tour.pages).

Best effort and bounded: a console that is down or slow costs the run a fraction of a second
per phase and nothing else. The lab's admin secret signs each report.
"""

from __future__ import annotations

from typing import Any

import httpx
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

TIMEOUT_S = 0.5


def announce(
    topology: Topology, scenario: str, state: str, text: str, report: str | None = None
) -> bool:
    """Send one chaos phase (STATE: started, phase, finished); whether the console took it."""
    body = {"scenario": scenario, "state": state}
    if report:
        body["report"] = report
    return tell(topology, "chaos", text, **body)


def tell(topology: Topology, kind: str, text: str, **fields: str) -> bool:
    """Send one line of KIND (chaos, shard) to the console's feed; whether the console took it."""
    return send(topology, "/api/lab-events", {**fields, "kind": kind, "text": text})


def send(topology: Topology, path: str, body: dict[str, Any]) -> bool:
    """POST BODY to the console's PATH, signed; whether it took it (202). False, at once, for a
    lab without a console or without its secrets."""
    consoles = topology.of_kind("console")
    if not consoles:
        return False
    try:
        secret = lab_secrets.load(topology).admin_secret
    except lab_secrets.SecretsMissing:
        return False
    try:
        reply = httpx.post(
            f"{consoles[0].url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=TIMEOUT_S,
        )
    except httpx.HTTPError:
        return False
    return reply.status_code == 202
