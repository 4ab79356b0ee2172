"""What every kind's env.py runs: the revisions, on the connection the caller opened."""

from __future__ import annotations

from alembic import context


def run() -> None:
    """Online only: migrations always run against a primary the caller connected to."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through reviewlab_common.migrations.upgrade()")
    context.configure(
        connection=connection,
        version_table=context.config.attributes["version_table"],
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
