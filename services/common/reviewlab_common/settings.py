"""Settings every lab process shares: which node it is and where the topology lives."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from reviewlab_common.topology import Node, Topology, TopologyError, current


class NodeSettings(BaseSettings):
    """REVIEWLAB_NODE names the node this process is; it has no default on purpose."""

    model_config = SettingsConfigDict(env_prefix="REVIEWLAB_")

    node: str

    def topology(self) -> Topology:
        return current()

    def this_node(self) -> Node:
        topology = self.topology()
        if self.node not in topology.nodes:
            raise TopologyError(
                f"REVIEWLAB_NODE={self.node!r} is not a node of the topology; "
                f"nodes: {', '.join(topology.nodes)}"
            )
        return topology.nodes[self.node]
