"""The kind registry is whole: every kind the topology allows has one consistent entry."""

from __future__ import annotations

import pytest
from reviewlab_common.topology import NODE_KINDS, TopologyError, load
from reviewlab_lab import composefile, kinds, render


def test_every_kind_the_topology_allows_has_one_entry() -> None:
    assert set(kinds.KINDS) == NODE_KINDS
    assert all(name == spec.name for name, spec in kinds.KINDS.items())


@pytest.mark.parametrize("spec", kinds.KINDS.values(), ids=lambda s: s.name)
def test_each_entry_is_consistent(spec: kinds.KindSpec) -> None:
    assert spec.ready_check in kinds.READY_CHECKS
    assert (spec.ready_url is not None) == (spec.ready_check == "http")
    assert set(spec.faults) <= set(kinds.FAULTS)
    assert set(spec.after) <= NODE_KINDS and spec.name not in spec.after
    assert set(spec.published) <= {"tcp", "udp"}
    assert spec.placement in ("", *kinds.PLACEMENTS)
    # Provisioning waits for what it writes into; what waits for provisioning cannot be that.
    assert not (spec.needs_provisioning and spec.provisioning_needs_it)


@pytest.mark.parametrize("runtime", ["native", "compose"])
def test_ready_means_the_same_check_on_both_runtimes(runtime: str) -> None:
    """The Compose health check runs the check ready.probe runs, at the node's address."""
    topology = load(runtime=runtime)
    for node in topology.nodes.values():
        spec = kinds.of(node)
        check = composefile.healthcheck(topology, node)
        if spec.ready_check == "http":
            assert spec.ready_url is not None
            assert check[-1] == spec.ready_url(node), node.name
        else:
            assert check[0] == "CMD-SHELL" and node.address in check[1], node.name


def test_the_waves_cover_every_kind_once() -> None:
    first, second = kinds.of_wave(1), kinds.of_wave(2)
    assert set(first) | set(second) == NODE_KINDS and not set(first) & set(second)
    assert kinds.with_fault("delay") == ("web", "worker")


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(TopologyError, match="no entry for node kind 'cache'"):
        kinds.spec("cache")


def test_each_kind_names_a_registered_config_writer_and_program() -> None:
    specs = kinds.KINDS.values()
    assert {s.program for s in specs if s.runs} == set(render.PROGRAMS)
    # Only the vIP runs nothing: an address its members pass between them.
    assert [s.name for s in specs if not s.runs] == ["vip"]
    assert {s.config for s in specs if s.config} == set(render.CONFIG_WRITERS)
