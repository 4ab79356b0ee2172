"""Step multi-master: why the catalog has one master. Two writable Postgres nodes that replicate
to each other (logical replication both ways) take conflicting writes, lose one without an
error, echo the row back and forth, and stop replicating at the first duplicate key.

The pair is scratch: two Postgres servers made for the step in a temporary directory where a
lab Postgres node runs (its binaries, the lab's user), reachable only through their Unix
sockets there, stopped and removed after the step.
"""

from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reviewlab_lab import install, procs
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

SCRATCH_PREFIX = "/tmp/reviewlab-tour-multimaster."
MEMBERS = {"a": 5501, "b": 5502}  # Unix-socket "ports": the socket file's name, no TCP
PEER = {"a": "b", "b": "a"}
SKU, FIRST_PRICE = "tee-42", 10
PRICES = {"a": 12, "b": 15}  # the conflicting updates, one on each master
NEW_SKU, NEW_PRICES = "dress-7", {"a": 30, "b": 35}  # the conflicting inserts
SETTLE_S = 1.5
SERVER = (
    "-c listen_addresses='' -c unix_socket_directories={dir} -c port={port} -c wal_level=logical"
    " -c fsync=off -c max_wal_senders=4 -c max_replication_slots=4 -c shared_buffers=16MB"
    # A re-enabled subscription's apply worker starts within this, not the default 5 s.
    " -c wal_retrieve_retry_interval=100ms"
)
# Reads the row every 50 ms inside the server, each read its own snapshot: what a client of
# that master would have seen over WATCH_READS * 50 ms.
WATCH_READS = 20
WATCH = (
    "CREATE FUNCTION watch(sku_wanted text, reads int) RETURNS text LANGUAGE plpgsql VOLATILE "
    "AS $$ DECLARE seen text := ''; p int; BEGIN FOR i IN 1..reads LOOP "
    "SELECT price INTO p FROM stock WHERE sku = sku_wanted; seen := seen || p || ' '; "
    "PERFORM pg_sleep(0.05); END LOOP; RETURN seen; END $$"
)
SCHEMA = (
    "CREATE TABLE stock (sku text PRIMARY KEY, price int NOT NULL);"
    f"INSERT INTO stock VALUES ('{SKU}', {FIRST_PRICE});"
    "CREATE PUBLICATION shop FOR TABLE stock;"
    f"{WATCH}"
)


class ScratchPair:
    """Two scratch Postgres servers where NODE runs, each a master publishing `stock`."""

    def __init__(self, lab: TourLab, node: str) -> None:
        self.lab, self.node = lab, node
        self.bin = install.current().postgres_bin
        self.dir = ""

    def _run(self, script: str) -> str:
        argv = ["sh", "-c", script]
        if self.lab.runtime.name == "native":  # natively the lab's CLI is root: be the lab's user
            argv = procs.as_run_user(self.lab.topology, argv)
        return self.lab.runtime.run_in_node(self.node, argv).strip()

    def start(self) -> None:
        self.dir = self._run(f"mktemp -d {SCRATCH_PREFIX}XXXXXX")
        self.lab.undo_later(f"the scratch Postgres pair in {self.dir} on {self.node}", self.stop)
        for member, port in MEMBERS.items():
            data = f"{self.dir}/{member}"
            options = SERVER.format(dir=self.dir, port=port)
            self._run(
                f"{self.bin}/initdb -D {data} -U postgres -A trust --no-sync -E UTF8 >/dev/null"
                f" && {self.bin}/pg_ctl -D {data} -l {data}.log -w -o {shlex.quote(options)}"
                " start >/dev/null"
            )
            self.sql(member, SCHEMA)

    def stop(self) -> None:
        if not self.dir.startswith(SCRATCH_PREFIX):
            return
        stops = " ; ".join(
            f"{self.bin}/pg_ctl -D {self.dir}/{m} -m immediate stop >/dev/null 2>&1"
            for m in MEMBERS
        )
        self._run(f"{stops} ; rm -rf {self.dir}")

    def sql(self, member: str, statement: str) -> str:
        """Run STATEMENT on MEMBER; its rows as `a|b` lines. A failed statement: LabFailed."""
        psql = (
            f"{self.bin}/psql -X -q -t -A -v ON_ERROR_STOP=1 -h {self.dir} -p {MEMBERS[member]}"
            f" -U postgres -d postgres -c {shlex.quote(statement)}"
        )
        return self._run(f"{psql} 2>&1")

    def subscribe(self, member: str) -> None:
        """MEMBER subscribes to its peer's `stock`, from now on (no copy), disabled for now."""
        peer = PEER[member]
        link = f"host={self.dir} port={MEMBERS[peer]} user=postgres dbname=postgres"
        self.sql(
            member,
            f"CREATE SUBSCRIPTION from_{peer} CONNECTION '{link}' PUBLICATION shop "
            "WITH (copy_data = false, enabled = false)",
        )

    def link(self, enabled: bool) -> None:
        """Both subscriptions on (the masters exchange their changes) or off (partitioned)."""
        verb = "ENABLE" if enabled else "DISABLE"
        for member in MEMBERS:
            self.sql(member, f"ALTER SUBSCRIPTION from_{PEER[member]} {verb}")

    def price(self, member: str, sku: str) -> tuple[int | None, int]:
        """SKU's price on MEMBER, and the row version's transaction id (xmin)."""
        row = self.sql(member, f"SELECT price, xmin FROM stock WHERE sku = '{sku}'")
        if not row:
            return None, 0
        price, xmin = row.split("|")
        return int(price), int(xmin)

    def watch(self, member: str, sku: str) -> list[int]:
        """SKU's price on MEMBER, read WATCH_READS times 50 ms apart."""
        seen = self.sql(member, f"SELECT watch('{sku}', {WATCH_READS})")
        return [int(price) for price in seen.split()]

    def apply_errors(self, member: str) -> int:
        total = "SELECT coalesce(sum(apply_error_count), 0) FROM pg_stat_subscription_stats"
        return int(self.sql(member, total) or 0)


@dataclass
class MultiMasterEvidence(Evidence):
    node: str = ""
    accepted: dict[str, bool] = field(default_factory=dict)  # each master's update committed
    after: dict[str, int | None] = field(default_factory=dict)  # the price once exchanged
    watched: dict[str, list[int]] = field(default_factory=dict)  # its reads, 50 ms apart
    rewrites: dict[str, int] = field(default_factory=dict)  # row versions in the echo window
    inserted: dict[str, int | None] = field(default_factory=dict)  # the new sku's price
    apply_errors: dict[str, int] = field(default_factory=dict)
    later_write_arrived: bool | None = None


def _settle(pair: ScratchPair, seen: MultiMasterEvidence) -> None:
    """The conflicting updates, made while the masters are cut apart, then exchanged."""
    pair.link(False)
    for member, price in PRICES.items():
        pair.sql(member, f"UPDATE stock SET price = {price} WHERE sku = '{SKU}'")
        seen.accepted[member] = True  # a refused statement raises
        seen.shown.append(f"master {member}: UPDATE price = {price}  -> committed, no conflict")
    pair.link(True)
    time.sleep(SETTLE_S)
    first = {m: pair.price(m, SKU) for m in MEMBERS}
    with ThreadPoolExecutor(max_workers=len(MEMBERS)) as pool:  # both masters at once
        watching = {m: pool.submit(pair.watch, m, SKU) for m in MEMBERS}
        seen.watched = {m: job.result() for m, job in watching.items()}
    for member in MEMBERS:
        seen.after[member], xmin = pair.price(member, SKU)
        seen.rewrites[member] = max(0, xmin - first[member][1])


def _insert_conflict(pair: ScratchPair, seen: MultiMasterEvidence) -> None:
    """One new key inserted on both masters while cut apart: each side's apply then fails."""
    pair.link(False)
    for member, price in NEW_PRICES.items():
        pair.sql(member, f"INSERT INTO stock VALUES ('{NEW_SKU}', {price})")
    pair.link(True)
    time.sleep(SETTLE_S)
    for member in MEMBERS:
        seen.inserted[member] = pair.price(member, NEW_SKU)[0]
        seen.apply_errors[member] = pair.apply_errors(member)
    # A write made after that on a: does it still reach b?
    marker = "scarf-1"
    pair.sql("a", f"INSERT INTO stock VALUES ('{marker}', 5)")
    time.sleep(SETTLE_S)
    seen.later_write_arrived = pair.price("b", marker)[0] is not None


def runs(reads: list[int]) -> str:
    """READS as runs of one value: `15 x3, 12 x1`."""
    out: list[tuple[int, int]] = []
    for price in reads:
        if out and out[-1][0] == price:
            out[-1] = (price, out[-1][1] + 1)
        else:
            out.append((price, 1))
    return ", ".join(f"{price} x{count}" for price, count in out)


def run(lab: TourLab) -> MultiMasterEvidence:
    nodes = lab.topology.of_kind("postgres")
    if not nodes:
        raise ClaimFailed("the topology has no Postgres node to run the scratch pair on")
    node = nodes[0].name
    pair = ScratchPair(lab, node)
    seen = MultiMasterEvidence(node=node)
    lab.say(f"starting two scratch Postgres masters, a and b, where {node} runs ...")
    pair.start()
    for member in MEMBERS:
        pair.subscribe(member)
    seen.shown.append(f"both hold {SKU} at {FIRST_PRICE}; each replicates its writes to the other")
    _settle(pair, seen)
    for member in MEMBERS:
        reads = runs(seen.watched[member])
        seen.shown.append(f"{SKU} on {member}, {WATCH_READS} reads 50 ms apart: {reads}")
    _insert_conflict(pair, seen)
    seen.shown.append(
        f"{NEW_SKU} inserted on both: a keeps {seen.inserted['a']}, b keeps {seen.inserted['b']}; "
        "each side's apply fails on the duplicate key"
    )
    where = f"scratch pair on {node}"
    for member in MEMBERS:
        seen.add(f"{SKU} on master {member}", seen.after[member] or "none", "", where)
    for member in MEMBERS:
        seen.add(
            f"row rewritten on {member} in {WATCH_READS * 0.05:.0f} s",
            seen.rewrites[member],
            "times",
            "xmin, no client writing",
        )
    for member in MEMBERS:
        errors = seen.apply_errors[member]
        seen.add(f"apply errors on {member}", errors, "", "pg_stat_subscription_stats")
    seen.add(
        "a's next write reached b",
        "yes" if seen.later_write_arrived else "no",
        "",
        f"within {SETTLE_S} s",
    )
    return seen


def check(seen: MultiMasterEvidence) -> str:
    require(
        all(seen.accepted.get(m) for m in MEMBERS),
        f"both masters should accept their own update; accepted: {seen.accepted}",
    )
    lost = [m for m in MEMBERS if any(p != PRICES[m] for p in seen.watched.get(m, []))]
    require(
        bool(lost),
        "a master should lose its own acknowledged update to the other's; "
        f"reads after reconnecting: {seen.watched}",
    )
    require(
        sum(seen.rewrites.values()) > 0,
        "the row should keep bouncing between the masters (each applies the other's echo); "
        f"row versions while watched: {seen.rewrites}",
    )
    require(
        all(seen.apply_errors.get(m, 0) > 0 for m in MEMBERS)
        and seen.inserted.get("a") != seen.inserted.get("b"),
        f"a key inserted on both should stop each side's apply; inserted {seen.inserted}, "
        f"apply errors {seen.apply_errors}",
    )
    require(not seen.later_write_arrived, "after the conflict, a's next write still reached b")
    kept = ", ".join(f"{m} {seen.after[m]}" for m in MEMBERS)
    return (
        f"both masters acknowledged conflicting updates and ended with {kept}: "
        f"{' and '.join(lost)} lost its own write without an error; the duplicate {NEW_SKU} "
        f"halted replication both ways ({seen.inserted['a']} vs {seen.inserted['b']})"
    )


STEP = Step(
    name="multimaster",
    title="Why not master-master",
    concept=(
        "Two masters that each take writes and copy them to the other sound more available, "
        "but nothing orders writes made on different masters at the same time. You will start "
        "two scratch Postgres masters that replicate both ways, write the same row on each "
        "while they are cut apart, reconnect them, and read what they hold."
    ),
    claim=(
        "Both masters acknowledge conflicting updates of one row; once they exchange them, an "
        "acknowledged write is gone without an error and the row keeps bouncing between them. "
        "A key inserted on both stops replication both ways: they disagree from then on."
    ),
    saw=(
        "Each master told its client 'committed', and still a write vanished: the masters "
        "applied each other's change over their own, with no conflict detected. The same key "
        "inserted twice stopped replication, and later writes no longer travel. That is why the "
        "catalog has one master: one place orders every write, and replicas only follow it."
    ),
    run=run,
    check=check,
)
