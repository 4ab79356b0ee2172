"""A scratch pair of load-balancer containers on the lab's own bridge network, sharing a
floating address through VRRP: the lab's nginx image (nginx and keepalived), NET_ADMIN, and
addresses of the lab network that no node uses. Removed after the test."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from reviewlab_common.topology import Topology
from reviewlab_lab.vrrp import keepalived

from tests.integration.vrrp_pair import PORT, PRIORITIES, ROUTER_ID, Pair, free_addresses

IMAGE = "reviewlab/nginx:dev"
INTERFACE = "eth0"


def docker(*argv: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


class ContainerPair(Pair):
    def __init__(self, topology: Topology) -> None:
        self.network = f"{topology.lab.runtime.options['project']}_lab"
        self.vip, *addresses = free_addresses(topology, 3)
        self.members = dict(zip(self.names, addresses, strict=True))
        self.dir = Path(tempfile.mkdtemp(prefix="reviewlab-vrrp-"))
        self.url = f"http://{self.vip}:{PORT}/"

    def container(self, name: str) -> str:
        return f"reviewlab-scratch-{name}"

    def start(self) -> None:
        for (name, address), priority in zip(self.members.items(), PRIORITIES, strict=True):
            home = self.dir / name
            home.mkdir()
            (home / "nginx.conf").write_text(
                "daemon off; pid /tmp/nginx.pid; error_log stderr;\n"
                f"events {{}}\nhttp {{ access_log off; server {{ listen {PORT};\n"
                f'  location / {{ return 200 "{name}"; }} }} }}\n'
            )
            peers = tuple(a for n, a in self.members.items() if n != name)
            check = ("/usr/bin/curl", "-sf", "-m1", "-o", "/dev/null", f"http://{address}:{PORT}/")
            instance = keepalived.Instance(
                name, address, peers, priority, INTERFACE, self.vip, ROUTER_ID, check
            )
            (home / "keepalived.conf").write_text(keepalived.render(instance))
            script = (
                "nginx -c /pair/nginx.conf & "
                "exec keepalived -n -l -D -f /pair/keepalived.conf -p /tmp/ka.pid -r /tmp/vrrp.pid"
            )
            docker(
                "run", "-d", "--name", self.container(name), "--network", self.network,
                "--ip", address, "--cap-add", "NET_ADMIN", "--user", "root",
                "-v", f"{home}:/pair:ro", IMAGE, "sh", "-c", script,
            )  # fmt: skip

    def holder(self) -> str | None:
        for name in self.members:
            shown = docker("exec", self.container(name), "ip", "-4", "-o", "addr", check=False)
            if f" {self.vip}/" in shown:
                return name
        return None

    def kill(self, name: str) -> None:
        docker("kill", self.container(name))

    def log(self, name: str) -> str:
        """What the member's keepalived wrote (to its stderr, which `docker logs` keeps)."""
        argv = ["docker", "logs", self.container(name)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def close(self) -> None:
        for name in self.members:
            docker("rm", "-f", self.container(name), check=False)
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)
