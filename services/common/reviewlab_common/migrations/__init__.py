"""Alembic migrations per database kind: the catalog, and every review shard.

Each kind is its own script directory (catalog/, shard/) with its own version table, so a
database says which kind it is and which revision of that kind it runs. The caller owns the
connection: it picks the cluster's primary, and this module only runs the revisions on it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

HERE = Path(__file__).resolve().parent
VERSION_TABLES = {"catalog": "catalog_schema_version", "shard": "shard_schema_version"}
# One migrator per database at a time: a second `db migrate` waits, then finds it at head.
MIGRATION_LOCK_KEY = 0x7265766C  # "revl"
# Alembic's `op` and `context` are process-wide proxies: one migration runs at a time per
# process. Callers may connect to many clusters in parallel; only the revisions take turns.
_ALEMBIC = threading.Lock()


def config(purpose: str, connection: Connection | None = None) -> Config:
    """Alembic's configuration for the database kind PURPOSE (catalog or shard)."""
    if purpose not in VERSION_TABLES:
        raise ValueError(f"no migrations for {purpose!r}; kinds: {', '.join(VERSION_TABLES)}")
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / purpose))
    cfg.attributes["connection"] = connection
    cfg.attributes["version_table"] = VERSION_TABLES[purpose]
    return cfg


def head(purpose: str) -> str:
    """The newest revision of PURPOSE's migrations."""
    with _ALEMBIC:
        found = ScriptDirectory.from_config(config(purpose)).get_current_head()
    assert found is not None, f"{purpose} has no revisions"
    return found


def revisions(purpose: str) -> list[str]:
    """PURPOSE's revisions, oldest first."""
    with _ALEMBIC:
        script = ScriptDirectory.from_config(config(purpose))
        newest_first = [r.revision for r in script.walk_revisions()]
    return newest_first[::-1]


def current(connection: Connection, purpose: str) -> str | None:
    """The revision the database behind CONNECTION runs; None before the first migration."""
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLES[purpose]}
    )
    return context.get_current_revision()


def _lock(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def upgrade(connection: Connection, purpose: str, target: str = "head") -> None:
    """Bring the database to TARGET inside CONNECTION's transaction (the caller commits)."""
    _lock(connection)
    with _ALEMBIC:
        command.upgrade(config(purpose, connection), target)


def downgrade(connection: Connection, purpose: str, target: str) -> None:
    """Take the database back to TARGET ("base" removes every table of the kind)."""
    _lock(connection)
    with _ALEMBIC:
        command.downgrade(config(purpose, connection), target)


def stamp(connection: Connection, purpose: str, target: str) -> None:
    """Record TARGET as the database's revision without running anything ("base": none)."""
    _lock(connection)
    with _ALEMBIC:
        command.stamp(config(purpose, connection), target)
