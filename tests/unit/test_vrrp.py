"""keepalived's configuration and the floating address's segment, as written."""

from __future__ import annotations

import pytest
from reviewlab_lab.vrrp import keepalived, segment

INSTANCE = keepalived.Instance(
    "lb-1", "127.0.0.8", ("127.0.0.9",), 150, "vrrp0", "127.0.0.10", 51,
    ("/usr/bin/curl", "-sf", "http://127.0.0.8:8080/"),
)  # fmt: skip


def test_both_members_start_as_backup_without_preemption_over_unicast() -> None:
    conf = keepalived.render(INSTANCE)
    assert "state BACKUP\n  nopreempt\n" in conf
    assert "unicast_src_ip 127.0.0.8\n  unicast_peer {\n    127.0.0.9\n  }" in conf
    assert "127.0.0.10/32 dev vrrp0" in conf
    assert 'script "/usr/bin/curl -sf http://127.0.0.8:8080/"' in conf
    assert "notify" not in conf


def test_a_check_with_a_space_in_an_argument_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="split on spaces"):
        keepalived.render(replace(INSTANCE, check=("/bin/sh", "-c", "exit 0")))
    with pytest.raises(ValueError, match="router id"):
        keepalived.render(replace(INSTANCE, router_id=0))


def test_each_member_gets_its_own_namespace_and_veth_name() -> None:
    members = (segment.Member("lb-1", "127.0.0.8"), segment.Member("lb-2", "127.0.0.9"))
    made = segment.Segment("rl-vip", "127.0.0.7", "127.0.0.10", members)
    assert [m.host_side(made.bridge) for m in members] == ["rl-vip-lb-1", "rl-vip-lb-2"]
    assert made.in_namespace("lb-2", ["nginx"]) == [
        "ip",
        "netns",
        "exec",
        "reviewlab-lb-2",
        "nginx",
    ]
    with pytest.raises(ValueError, match="too long"):
        segment.Segment("a-much-too-long", "127.0.0.7", "127.0.0.10", members)
