"""Outlier ejection for a cluster's read members (Envoy's outlier detection, HAProxy's layer4).

A member whose connect failed or timed out leaves the rotation for a backoff that doubles with
each ejection in a row, up to a bound. When the backoff ends, one caller probes the member; a
member that answers is back on trial (its next failure ejects it for twice as long), one that
does not is ejected again. A read the member served clears its record.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Postgres answers an SSLRequest with one byte before any authentication, from the backend the
# postmaster forked for it: a byte back means the member accepts connections now.
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@dataclass(frozen=True)
class EjectionPolicy:
    """How long an ejected member stays out: base_s, doubled per ejection in a row, up to max_s."""

    base_s: float = 0.5
    max_s: float = 8.0

    def backoff(self, ejections: int) -> float:
        return min(self.max_s, self.base_s * 2.0 ** max(0, ejections - 1))


@dataclass
class MemberRecord:
    ejections: int = 0  # in a row; a served read resets it
    until: float = 0.0  # out of rotation until this moment (monotonic clock)
    probing: bool = False
    ejected_at: float | None = None  # the first ejection of the current run
    served_at: float = float("-inf")  # the last read it served


class Ejector:
    """Which of a cluster's members may serve reads now; thread-safe."""

    def __init__(
        self,
        probe: Callable[[str], bool],
        policy: EjectionPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self.policy = policy or EjectionPolicy()
        self._clock = clock
        self._records: dict[str, MemberRecord] = {}
        self._lock = threading.Lock()

    def _record(self, name: str) -> MemberRecord:
        return self._records.setdefault(name, MemberRecord())

    def eject(self, name: str) -> float:
        """Take NAME out of rotation after a failed connect or a timeout; the backoff in s."""
        with self._lock:
            record = self._record(name)
            now = self._clock()
            if record.until > now:
                return record.until - now  # several reads saw the same failure: one ejection
            record.ejections += 1
            if record.ejected_at is None:
                record.ejected_at = now
            backoff = self.policy.backoff(record.ejections)
            record.until = now + backoff
            record.probing = False
            return backoff

    def served(self, name: str) -> None:
        """NAME served a read: it is healthy, a later failure starts from the base backoff."""
        with self._lock:
            now = self._clock()
            record = self._record(name)
            if record.ejections and record.until <= now:
                record = self._records[name] = MemberRecord()
            record.served_at = now

    def serving(self, name: str, within: float) -> bool:
        """Whether NAME served a read in the last WITHIN s: alive, if maybe busy."""
        with self._lock:
            record = self._records.get(name)
            return record is not None and self._clock() - record.served_at <= within

    def admitted(self, names: Iterable[str]) -> list[str]:
        """The members of NAMES in rotation now; one whose backoff ended is probed first."""
        admitted: list[str] = []
        for name in names:
            with self._lock:
                record = self._record(name)
                if record.until <= self._clock() and not record.probing:
                    if not record.ejections or record.until == 0.0:
                        admitted.append(name)
                        continue
                    record.probing = True  # this caller probes; the others skip it meanwhile
                else:
                    continue
            answered = self._probe(name)
            with self._lock:
                record.probing = False
                if answered:
                    record.until = 0.0  # on trial: ejections in a row are kept until it serves
                    admitted.append(name)
            if not answered:
                self.eject(name)
        return admitted

    def ejected(self) -> dict[str, float]:
        """Members out of rotation now and the seconds until each is probed."""
        now = self._clock()
        with self._lock:
            return {n: r.until - now for n, r in self._records.items() if r.until > now}

    def ejected_since(self) -> dict[str, float]:
        """Members ejected and not yet back serving reads, with the monotonic time of ejection."""
        with self._lock:
            return {n: r.ejected_at for n, r in self._records.items() if r.ejected_at is not None}


def accepts_connections(address: str, port: int, timeout: float) -> bool:
    """Whether the Postgres at ADDRESS:PORT answers within TIMEOUT s (no log line on the server).

    A TCP handshake alone is not enough: the kernel completes it for a frozen (SIGSTOPped)
    postmaster too. The SSLRequest needs the server to answer.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False
