"""The chaos tier runs against the real lab, with the integration tier's fixtures."""

from __future__ import annotations

from tests.integration.conftest import lab_ready, nodes, token_for, topology

__all__ = ["lab_ready", "nodes", "token_for", "topology"]
