"""The tour's steps, in the order the article tells them."""

from __future__ import annotations

from typing import Any

from reviewlab_lab.errors import LabFailed
from reviewlab_lab.tour import (
    acid,
    api,
    availability,
    balancing,
    cdnsteps,
    consistency,
    dnsviews,
    latency,
    layers,
    multimaster,
    replication,
    scaling,
    sharding,
)
from reviewlab_lab.tour.step import Step

# DNS, the web server, scaling out, the CDN, the database (ACID, replication, why not
# master-master), sharding, then the closing trade-offs (scalability first).
STEPS: tuple[Step[Any], ...] = (
    dnsviews.STEP,
    api.STEP,
    balancing.STEP,
    layers.STEP,
    cdnsteps.STEP,
    acid.STEP,
    replication.STEP,
    multimaster.STEP,
    sharding.STEP,
    scaling.STEP,
    latency.STEP,
    consistency.STEP,
    availability.STEP,
)


def names() -> list[str]:
    return [s.name for s in STEPS]


def step(name: str) -> Step[Any]:
    """The step called NAME; LabFailed naming every step when there is none."""
    for found in STEPS:
        if found.name == name:
            return found
    raise LabFailed(f"no tour step {name!r}; steps: {', '.join(names())}")
