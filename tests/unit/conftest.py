"""Fixtures the unit tests share."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from reviewlab_lab.paths import TOPOLOGY_PATH


@pytest.fixture()
def document() -> dict[str, Any]:
    """The lab's topology file as read, fresh for each test to change."""
    with TOPOLOGY_PATH.open("rb") as handle:
        return tomllib.load(handle)
