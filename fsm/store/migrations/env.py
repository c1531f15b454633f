"""Alembic's environment: runs the migrations on a given connection or on ``sqlalchemy.url``.

The revisions spell out every table they create. The models they are compared with (to
autogenerate a revision) are the schema's tables on the sqlmodel metadata: the engine's, and the
adapters' journals where they are loaded (import ``adapters.reconcile.journal`` and
``adapters.inbound.journal`` first, or a new revision would drop theirs).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from fsm.store.connect import normalise_url
from fsm.store.schema import SCHEMA_TABLES, VERSION_TABLE


def _target_metadata() -> MetaData:
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.name in SCHEMA_TABLES:  # an application's own models are not ours to migrate
            table.to_metadata(metadata)
    return metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=_target_metadata(), version_table=VERSION_TABLE
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        offline_url = normalise_url(url) if url else url
        context.configure(
            url=offline_url,
            target_metadata=_target_metadata(),
            literal_binds=True,
            version_table=VERSION_TABLE,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if url is None:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or pass a connection")
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
