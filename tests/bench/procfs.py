"""What the benches read from /proc about one process: CPU time and memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


def cpu_ticks(pid: int) -> int:
    """User and system CPU time so far, in clock ticks (0 once the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except GONE:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except GONE:
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: a page shared by N processes counts 1/N to each."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except GONE:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0
