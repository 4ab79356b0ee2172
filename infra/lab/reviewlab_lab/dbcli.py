"""`reviewlab db`: migrate every cluster's schema to head, or show where each one stands."""

from __future__ import annotations

import argparse
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import dbmigrate
from reviewlab_lab.errors import LabFailed


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="database schemas (Alembic migrations per cluster)")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "migrate", help="bring the catalog and every shard to head (idempotent; skips a down one)"
    )
    db_sub.add_parser("status", help="each cluster's schema revision and whether it is at head")


def _print(result: dbmigrate.ClusterSchema) -> None:
    print(result.line(), flush=True)


def run(topology: Topology, args: argparse.Namespace) -> None:
    if args.db_command == "migrate":
        print("migrating every cluster to its head (catalog and review shards)", flush=True)
        dbmigrate.migrate_all(topology, _print)
        return
    results = dbmigrate.each_cluster(topology, dbmigrate.cluster_status, lambda _: None)
    for result in results:
        _print(result)
    behind = [r.cluster for r in results if not r.at_head]
    if behind:
        raise LabFailed(
            f"not at head: {', '.join(behind)}; `reviewlab db migrate` brings them there"
        )
