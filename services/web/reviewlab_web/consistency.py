"""Read-your-writes: a consistency token maps each shard to the LSN of the reader's last write.

A write returns it (header X-Consistency-Token and a cookie). A read carrying it is served
by a replica only once that replica has replayed the LSN, otherwise by the primary.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Cookie, Header, Response
from reviewlab_common.consistency import COOKIE, HEADER

__all__ = ["COOKIE", "HEADER"]  # with the helpers below
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def lsn_value(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def parse(token: str | None) -> dict[str, str]:
    """'reviews-0=0/3000060,reviews-1=0/2A0' -> {shard: lsn}; malformed parts are ignored."""
    found: dict[str, str] = {}
    for part in (token or "").split(","):
        shard, _, lsn = part.strip().partition("=")
        if shard and _LSN.match(lsn):
            found[shard] = lsn
    return found


def render(positions: dict[str, str]) -> str:
    return ",".join(f"{shard}={lsn}" for shard, lsn in sorted(positions.items()))


def merge(token: dict[str, str], shard: str, lsn: str) -> dict[str, str]:
    """The token after a write: keep the highest LSN seen per shard."""
    merged = dict(token)
    if shard not in merged or lsn_value(lsn) > lsn_value(merged[shard]):
        merged[shard] = lsn
    return merged


async def from_request(
    header: Annotated[str | None, Header(alias=HEADER)] = None,
    cookie: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> dict[str, str]:
    """The caller's token: the header wins over the cookie (async: no threadpool hop)."""
    return parse(header or cookie)


def attach(response: Response, positions: dict[str, str]) -> None:
    value = render(positions)
    response.headers[HEADER] = value
    response.set_cookie(COOKIE, value, max_age=3600, httponly=True, samesite="lax")
