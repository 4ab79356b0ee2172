"""The Compose suite shares the integration suite's fixtures (topology, readiness, nodes, vip)."""

from tests.integration.conftest import lab_ready, nodes, topology, vip

__all__ = ["lab_ready", "nodes", "topology", "vip"]
