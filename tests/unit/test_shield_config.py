"""The origin shield's config: what it sends MinIO decides what MinIO's policy allows."""

from __future__ import annotations

import re
import tomllib

from reviewlab_common.topology import parse
from reviewlab_lab.files import templates
from reviewlab_lab.paths import TOPOLOGY_PATH

FORWARDING = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def shield_config() -> str:
    with TOPOLOGY_PATH.open("rb") as handle:
        topology = parse(tomllib.load(handle))
    shield = topology.one("shield")
    return (
        templates()
        .get_template("cdn/shield.conf.j2")
        .render(
            node=shield,
            node_run="/tmp/run",
            data_dir="/tmp/data",
            log_dir="/tmp/logs",
            domain=topology.lab.domain,
            miss_ttl="5s",
            lab_network=topology.lab.internal_network,
            purge_key="k",
            purge_module="/tmp/purge.so",
            origin=topology.one("minio"),
            bucket="media",
            immutable_ttl=30 * 24 * 3600,
            mutable_ttl=60,
        )
    )


def test_every_fetch_from_minio_drops_the_forwarding_headers() -> None:
    # MinIO's policy reads the source address from these when present: a shopper's (set by
    # the vIP) got the shield refused; a forged one would pass for the shield.
    locations = re.findall(r"location /media/[^{]*\{(.*?)\n        \}", shield_config(), re.S)
    assert len(locations) == 3, locations
    for body in locations:
        assert "proxy_bind" in body
        for header in FORWARDING:
            assert f'proxy_set_header {header} "";' in body, header
