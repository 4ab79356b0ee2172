"""One load balancer of the vIP pair as one process: its nginx and its keepalived together.

    python -m reviewlab_lab.vrrp.member --user U --nginx 'ARGV' --keepalived 'ARGV'

The supervisor (supervisord natively, Docker under Compose) sees one node, as for every other
kind. The two live and die together: when nginx dies, keepalived is stopped at once, which
sends the standby a priority-0 advert, so the address moves without waiting for a health
check; when keepalived dies, nginx goes too (it would answer nothing: it no longer holds the
address). Then this process exits non-zero and its supervisor starts the member again.

The member keeps the vIP on its loopback too (`--quiet-vip`), where it answers no ARP
(arp_ignore): the address the machine sends to is the holder's copy on the segment, but a
member that loses it (a partition heals and the other keeps it) can still answer, from the
vIP, the requests it was serving. Without it their answers could not leave (the kernel sends
from no address it does not have), and their clients would wait for their timeout.

SIGHUP is passed on to both (each re-reads its config). A stop (SIGTERM) gives the address
up first (keepalived's goodbye advert), then lets nginx finish what it holds (SIGQUIT). Only
the standard library: it runs before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from types import FrameType

# How long nginx may take to finish the requests it holds on a stop.
NGINX_GRACE_S = 10.0
KEEPALIVED_GRACE_S = 5.0


def _stop(process: subprocess.Popen[bytes], signum: int, grace: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reviewlab_lab.vrrp.member")
    parser.add_argument("--user", help="the user nginx runs as (keepalived stays root)")
    parser.add_argument("--nginx", required=True)
    parser.add_argument("--keepalived", required=True)
    parser.add_argument(
        "--stale",
        action="append",
        default=[],
        metavar="FILE",
        help="a pid file of keepalived's to remove first: one left by a killed member names a "
        "process that may not be reaped yet, and keepalived would refuse to start",
    )
    parser.add_argument(
        "--quiet-vip",
        metavar="ADDRESS",
        help="the vIP, kept on the loopback so that requests in flight when the address moves "
        "away can still be answered",
    )
    args = parser.parse_args(argv)
    if args.quiet_vip:
        argv_ip = ["ip", "addr", "replace", f"{args.quiet_vip}/32", "dev", "lo"]
        subprocess.run(argv_ip, check=True)
    for stale in args.stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    stopping = False

    def on_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    owner = pwd.getpwnam(args.user) if args.user else None
    nginx = subprocess.Popen(
        shlex.split(args.nginx),
        user=owner.pw_uid if owner else None,
        group=owner.pw_gid if owner else None,
        extra_groups=[] if owner else None,
    )
    keepalived = subprocess.Popen(shlex.split(args.keepalived))

    def on_hup(signum: int, frame: FrameType | None) -> None:
        for child in (nginx, keepalived):
            if child.poll() is None:
                child.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGHUP, on_hup)
    while not stopping and nginx.poll() is None and keepalived.poll() is None:
        time.sleep(0.05)
    died = "" if stopping else ("nginx" if nginx.returncode is not None else "keepalived")
    # The address first: the standby takes it while nginx still answers what it holds.
    _stop(keepalived, signal.SIGTERM, KEEPALIVED_GRACE_S)
    _stop(nginx, signal.SIGQUIT, NGINX_GRACE_S)
    if not died:
        return 0
    print(
        f"member: {died} exited; the member stops and its supervisor restarts it", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
