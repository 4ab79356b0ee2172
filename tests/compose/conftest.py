"""The Compose suite shares the integration suite's fixtures (topology, readiness, nodes)."""

from tests.integration.conftest import lab_ready, nodes, topology

__all__ = ["lab_ready", "nodes", "topology"]
