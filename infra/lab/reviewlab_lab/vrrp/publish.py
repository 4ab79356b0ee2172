"""The machine's way to the vIP of a Compose lab: its published address, forwarded by NAT.

A port published by Docker follows one container, but the vIP moves between the two load
balancers' containers. So the machine's own vIP address (127.0.0.10, as natively) is sent to
the floating address on the lab's bridge by the kernel: a DNAT rule for what the machine's
programs send there, a SNAT rule that gives those packets the bridge's gateway as their source
(a 127 source has no way back from a container), and `route_localnet` on the bridge, without
which the kernel drops a packet from a 127 address before the SNAT rule sees it.
"""

from __future__ import annotations

import subprocess

from reviewlab_lab.errors import LabFailed

# Every rule carries this comment, so an unpublish finds them.
RULE_TAG = "reviewlab-vip"


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["iptables", "-w", "-t", "nat", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise LabFailed("iptables is not installed (`make docker` installs it)") from exc
    if check and done.returncode != 0:
        raise LabFailed(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done


def rules(host_address: str, ports: list[int], vip: str, gateway: str) -> list[list[str]]:
    """The two rules as `iptables -t nat -A` arguments."""
    tag = ["-m", "comment", "--comment", RULE_TAG]
    listed = ",".join(str(p) for p in ports)
    return [
        ["OUTPUT", "-d", f"{host_address}/32", "-p", "tcp", "-m", "multiport", "--dports",
         listed, *tag, "-j", "DNAT", "--to-destination", vip],
        ["POSTROUTING", "-s", "127.0.0.0/8", "-d", f"{vip}/32", "-p", "tcp", *tag,
         "-j", "SNAT", "--to-source", gateway],
    ]  # fmt: skip


def bridge_to(address: str) -> str:
    """The machine's interface toward ADDRESS (the lab network's bridge)."""
    done = subprocess.run(
        ["ip", "-o", "route", "get", address], capture_output=True, text=True, check=False
    )
    words = done.stdout.split()
    if done.returncode != 0 or "dev" not in words:
        raise LabFailed(f"no route to the vIP {address}: is the lab network up?")
    return words[words.index("dev") + 1]


def publish(host_address: str, ports: list[int], vip: str, gateway: str) -> None:
    """Forward HOST_ADDRESS:PORTS to the vIP; idempotent."""
    bridge = bridge_to(vip)
    subprocess.run(
        ["sysctl", "-qw", f"net.ipv4.conf.{bridge}.route_localnet=1"], check=True, timeout=10
    )
    for rule in rules(host_address, ports, vip, gateway):
        if _iptables("-C", *rule, check=False).returncode != 0:
            _iptables("-A", *rule)


def unpublish() -> None:
    """Remove every rule publish added; none there is no change."""
    for chain in ("OUTPUT", "POSTROUTING"):
        listed = _iptables("-S", chain, check=False).stdout.splitlines()
        for line in listed:
            if RULE_TAG in line and line.startswith("-A "):
                words = [w.strip('"') for w in line.split()[1:]]
                _iptables("-D", *words, check=False)
