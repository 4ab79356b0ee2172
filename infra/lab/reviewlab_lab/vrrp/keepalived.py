"""keepalived's configuration for one member of a floating-address pair (VRRP version 3).

Unicast adverts to the peers (a bridge between containers or namespaces need not carry
multicast), both members start as BACKUP with `nopreempt`: the higher priority wins the first
election, and a member that comes back after a failure does not take the address back from
one that is serving (a second move would cut connections for nothing). A health check of
the member's own service puts it in FAULT when the service stops answering, and a member in
FAULT gives the address up at once (it sends a priority-0 advert).
"""

from __future__ import annotations

from dataclasses import dataclass

# Adverts four times a second (VRRPv3 counts in centiseconds): a silent master is declared
# dead after three missed adverts and the skew, 0.9 s at priority 100, before a client's
# retry a second later.
ADVERT_S = 0.25
CHECK_INTERVAL_S = 1
CHECK_TIMEOUT_S = 1
# The holder announces the address at once when it hears a lower priority (two masters as a
# partition heals), and again every GARP_REFRESH_S while it holds it: a machine that missed an
# announcement, and still sends to a member that stepped down, follows the holder within that
# time. Every member keeps a quiet copy of the vIP (reviewlab_lab.vrrp.member), so nothing
# else would correct such an entry: the wrong member answers. In a split brain both masters
# announce, and the machine moves between them at each announcement.
GARP_REFRESH_S = 2
# Failed checks before FAULT, passed checks before the member may hold the address again.
CHECK_FALL, CHECK_RISE = 1, 2


@dataclass(frozen=True)
class Instance:
    """One member's view of the pair: who it is, whom it talks to, what it may hold."""

    name: str
    address: str
    peers: tuple[str, ...]
    priority: int
    interface: str
    vip: str
    router_id: int
    # argv of a command that exits 0 while the member's own service answers.
    check: tuple[str, ...]
    # Run with the new state (MASTER, BACKUP, FAULT, STOP) as its last argument, if given.
    notify: tuple[str, ...] = ()


def _quoted(argv: tuple[str, ...]) -> str:
    if any('"' in arg or " " in arg for arg in argv):
        raise ValueError(f"keepalived scripts are split on spaces: {argv!r}")
    return '"' + " ".join(argv) + '"'


def render(instance: Instance) -> str:
    """keepalived.conf for INSTANCE."""
    if not 1 <= instance.router_id <= 255 or not 1 <= instance.priority <= 254:
        raise ValueError("a VRRP router id is 1..255 and a priority 1..254")
    peers = "\n".join(f"    {peer}" for peer in instance.peers)
    notify = f"  notify {_quoted(instance.notify)}\n" if instance.notify else ""
    return f"""# keepalived for {instance.name}: written by reviewlab, edits are overwritten
global_defs {{
  router_id {instance.name}
  vrrp_version 3
  script_user root
  enable_script_security
  vrrp_garp_master_repeat 3
  vrrp_garp_lower_prio_repeat 3
  vrrp_garp_master_refresh {GARP_REFRESH_S}
}}

vrrp_script service_answers {{
  script {_quoted(instance.check)}
  interval {CHECK_INTERVAL_S}
  timeout {CHECK_TIMEOUT_S}
  fall {CHECK_FALL}
  rise {CHECK_RISE}
}}

vrrp_instance vip {{
  state BACKUP
  nopreempt
  interface {instance.interface}
  virtual_router_id {instance.router_id}
  priority {instance.priority}
  advert_int {ADVERT_S}
  unicast_src_ip {instance.address}
  unicast_peer {{
{peers}
  }}
  virtual_ipaddress {{
    {instance.vip}/32 dev {instance.interface}
  }}
  track_script {{
    service_answers
  }}
{notify}}}
"""
