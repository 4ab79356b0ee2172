"""Switch the vIP's mode where its files are: write the config, let nginx check it, reload.

The native runtime runs this on the machine; the Compose runtime runs it inside the lb
container (`reviewlab lb set` there), where the node's config, pid and log files live.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from reviewlab_common.topology import Topology

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


def check_config(topology: Topology, paths: LabPaths, conf: Path) -> str | None:
    """nginx's own verdict on a config file, as the lab user; None when it is valid."""
    prefix = paths.data(topology.one("lb").name)
    argv = [loadbalancer.NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    result = subprocess.run(
        as_run_user(topology, argv), capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()


def reload(topology: Topology, paths: LabPaths, timeout: float = 10.0) -> None:
    """SIGHUP nginx; wait until the new worker runs and the old one stopped accepting."""
    lb = topology.one("lb")
    log = loadbalancer.error_log(paths)
    offset = log.stat().st_size if log.exists() else 0
    pid_file = paths.node_run(lb.name) / "nginx.pid"
    try:
        os.kill(int(pid_file.read_text()), signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError) as exc:
        raise SwitchFailed(
            f"the load balancer is not running ({pid_file}: {exc}); the new config was saved "
            "and applies at the next `reviewlab up`"
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


def apply(topology: Topology, paths: LabPaths, mode: loadbalancer.LbMode) -> bool:
    """Render MODE, check it with nginx, then reload gracefully; report whether it changed."""
    conf = paths.conf / loadbalancer.CONFIG_NAME
    previous = conf.read_text() if conf.exists() else None
    old_mode = loadbalancer.current_mode(paths)
    text = loadbalancer.render_config(topology, paths, templates(), mode)
    if not write_if_changed(conf, text):
        save_mode(paths, mode)
        return False
    problem = check_config(topology, paths, conf)
    if problem is not None:
        if previous is not None:
            conf.write_text(previous)
        raise SwitchFailed(
            f"nginx rejected the config for {mode}; the vIP keeps serving {old_mode}.\n{problem}"
        )
    save_mode(paths, mode)
    reload(topology, paths)
    return True
