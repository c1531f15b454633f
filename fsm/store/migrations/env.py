"""Alembic's environment: runs the migrations on a given connection or on ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine
from sqlalchemy.pool import NullPool

from fsm.store.connect import normalise_url
from fsm.store.schema import VERSION_TABLE
from fsm.store.tables import TABLES


def _target_metadata() -> MetaData:
    metadata = MetaData()
    for table in TABLES:
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
