"""The lab's footprint at rest: CPU used by all its processes over a window, and total RSS.

Usage: python -m tests.bench.lab_footprint [--seconds 30]
Reads /proc for every process of the lab's user; sends no traffic.
"""

from __future__ import annotations

import argparse
import os
import pwd
import time
from pathlib import Path

from reviewlab_lab import install

from tests.bench.procfs import TICK, cpu_ticks, rss_bytes


def lab_processes(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    uid = pwd.getpwnam(install.current().run_user).pw_uid
    pids = lab_processes(uid)
    before = {pid: cpu_ticks(pid) for pid in pids}
    print(f"measuring {len(pids)} processes for {args.seconds:.0f} s ...", flush=True)
    time.sleep(args.seconds)
    used = sum(max(0, cpu_ticks(pid) - ticks) for pid, ticks in before.items()) / TICK
    rss = sum(rss_bytes(pid) for pid in pids)
    cores = os.cpu_count() or 1
    print(
        f"idle CPU: {used:.2f} CPU-seconds in {args.seconds:.0f} s = "
        f"{100 * used / args.seconds:.1f}% of one core ({100 * used / args.seconds / cores:.1f}% "
        f"of {cores} cores)"
    )
    print(
        f"memory: {rss / 2**20:.0f} MiB total RSS over {len(pids)} processes "
        "(shared pages counted once per process)"
    )


if __name__ == "__main__":
    main()
