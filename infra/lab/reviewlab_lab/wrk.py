"""One bounded wrk run and what it measured: the lab's fixed-load HTTP benchmark.

`make bench` and the guided tour's latency-vs-throughput step both drive wrk through this.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

WRK = "/usr/bin/wrk"
MAX_DURATION_S = 30
MAX_CONNECTIONS = 128
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Result:
    label: str
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS_MS[unit]


def parse(label: str, out: str) -> Result:
    """wrk's `--latency` report as a Result; RuntimeError when it holds no figures."""
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    per_second = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if per_second is None or not {"50", "99"} <= latency.keys():
        raise RuntimeError(f"could not read wrk's output for {label}:\n{out}")
    return Result(label, float(per_second.group(1)), _ms(latency["50"]), _ms(latency["99"]), errors)


def wrk(
    label: str,
    url: str,
    duration: int,
    connections: int,
    headers: dict[str, str] | None = None,
    threads: int | None = None,
    timeout_s: int | None = None,
) -> Result:
    """One bounded wrk run (2 threads, like the machine's 2 cores; never more threads than
    connections, which wrk refuses) and what it measured."""
    if not (1 <= duration <= MAX_DURATION_S and 1 <= connections <= MAX_CONNECTIONS):
        raise ValueError(
            f"keep the load bounded: duration 1..{MAX_DURATION_S} s, "
            f"connections 1..{MAX_CONNECTIONS}"
        )
    threads = threads or min(2, connections)
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if timeout_s:  # wrk counts an answer slower than this (2 s unless told) as an error
        argv.append(f"--timeout={timeout_s}s")
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse(label, out)
