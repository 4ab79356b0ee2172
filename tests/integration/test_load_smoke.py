"""A short headless Locust run of the shoppers (tests/load): the reports exist and every task
sent requests, none of which failed. Speed is not asserted: `make bench` reports it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from reviewlab_lab.paths import REPO

from tests.conftest import deadline
from tests.load.names import TASK_NAMES


def test_a_short_load_run_reports_every_task_without_failures(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.load.run", "--users", "4", "--spawn", "4"]
    argv += ["--duration", "8s", "--processes", "1", "--think", "0.1-0.5"]
    argv += ["--max-failure-ratio", "0", "--reports", str(tmp_path)]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=deadline(90), check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (stats,) = tmp_path.glob("load-*_stats.csv")
    prefix = str(stats).removesuffix("_stats.csv")
    html = Path(f"{prefix}.html").read_text()
    server = Path(f"{prefix}_server.md").read_text()
    assert "The server&#x27;s side" in html or "The server's side" in html
    for part in ("Who served", "hit ratio", "job stream depth", "POST to cutout ready", "lag"):
        assert part in server, server
    assert str(stats) in done.stdout  # the paths are printed

    with open(stats, newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    for name in TASK_NAMES:
        assert name in rows, f"no requests for {name!r}: {sorted(rows)}"
        assert int(rows[name]["Request Count"]) > 0, rows[name]
        assert int(rows[name]["Failure Count"]) == 0, rows[name]
    assert int(rows["Aggregated"]["Failure Count"]) == 0
