"""Switch the vIP's mode where its files are: write each load balancer's config, let nginx
check it, reload. Both members always serve the same mode, so a failover changes nothing a
client can see but the member's name.

The native runtime runs this on the machine for every member; the Compose runtime runs it
inside each lb container (`reviewlab lb set` there), where the member's own files live.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from reviewlab_common.topology import Node, Topology

from reviewlab_lab import loadbalancer
from reviewlab_lab.files import templates, write_if_changed
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.procs import as_run_user
from reviewlab_lab.runtimes.base import SwitchFailed

# The last line `reviewlab lb set` prints when nginx took the new mode.
RELOADED = "nginx reloaded gracefully"


def save_mode(paths: LabPaths, mode: loadbalancer.LbMode) -> None:
    paths.conf.mkdir(parents=True, exist_ok=True)
    with open(loadbalancer.mode_file(paths), "w") as handle:
        handle.write(loadbalancer.mode_text(mode))


def check_config(topology: Topology, paths: LabPaths, member: Node, conf: Path) -> str | None:
    """nginx's own verdict on MEMBER's config file, as the lab user; None when it is valid."""
    prefix = paths.data(member.name)
    argv = [loadbalancer.NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    result = subprocess.run(
        as_run_user(topology, argv), capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()


def reload(paths: LabPaths, lb: Node, timeout: float = 10.0) -> None:
    """SIGHUP LB's nginx; wait until the new worker runs and the old one stopped accepting."""
    log = loadbalancer.error_log(paths, lb)
    offset = log.stat().st_size if log.exists() else 0
    pid_file = paths.node_run(lb.name) / "nginx.pid"
    try:
        os.kill(int(pid_file.read_text()), signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError) as exc:
        raise SwitchFailed(
            f"load balancer {lb.name} is not running ({pid_file}: {exc}); the new config was "
            "saved and applies when it starts"
        ) from exc
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        size = log.stat().st_size if log.exists() else 0
        if size < offset:  # the log was rotated
            offset = 0
        with open(log, errors="replace") as handle:
            handle.seek(offset)
            news = handle.read()
        if "[emerg]" in news:
            raise SwitchFailed(f"nginx kept its previous config: {news.strip()}")
        # New workers run, and the old one has closed its listening sockets: from now on
        # every new connection meets the new mode.
        if "start worker process" in news and "gracefully shutting down" in news:
            return
        time.sleep(0.05)
    raise SwitchFailed(f"nginx did not start new workers within {timeout:.0f} s; see {log}")


def apply(
    topology: Topology, paths: LabPaths, mode: loadbalancer.LbMode, members: list[Node]
) -> bool:
    """Render MODE for every one of MEMBERS, check each with nginx, then reload them
    gracefully; report whether anything changed. One refused config changes no member."""
    old_mode = loadbalancer.current_mode(paths)
    jinja = templates()
    texts = {m.name: loadbalancer.render_config(topology, paths, jinja, m, mode) for m in members}
    previous: dict[str, str | None] = {}
    changed: list[Node] = []
    for member in members:
        conf = loadbalancer.config_path(paths, member)
        previous[member.name] = conf.read_text() if conf.exists() else None
        if write_if_changed(conf, texts[member.name]):
            changed.append(member)
    for member in changed:
        problem = check_config(topology, paths, member, loadbalancer.config_path(paths, member))
        if problem is not None:
            for back in changed:
                old = previous[back.name]
                if old is not None:
                    loadbalancer.config_path(paths, back).write_text(old)
            raise SwitchFailed(
                f"nginx rejected the config for {mode}; the vIP keeps serving {old_mode}.\n"
                f"{problem}"
            )
    save_mode(paths, mode)
    for member in changed:
        reload(paths, member)
    return bool(changed)
