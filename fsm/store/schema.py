"""The schema's Alembic migrations, shipped with the package and run without an ``alembic.ini``.

:meth:`fsm.store.sql.SqlStore.create_schema` runs them; :func:`alembic_config` builds the
configuration for running Alembic's commands directly on a connection or a URL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, sql

from fsm.errors import ConfigurationError

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder: ``env.py`` and ``versions/``."""

FIRST_REVISION = "0001"
"""flow_instance, transition_log and rejected_event."""

HEAD_REVISION = "0011"
"""The latest revision: the status checks requested of a worker."""
VERSION_TABLE = "ewallet_fsm_version"
"""Our own version table: an application's Alembic history in the same schema never meets ours."""

_UNVERSIONED_TABLES = {
    FIRST_REVISION: frozenset({"flow_instance", "transition_log", "rejected_event"}),
    "0002": frozenset({"flow_instance", "transition_log", "rejected_event", "inbound_attempt"}),
    "0003": frozenset(
        {"flow_instance", "transition_log", "rejected_event", "inbound_attempt", "call_intent"}
    ),
    "0008": frozenset(
        {
            "flow_instance",
            "transition_log",
            "rejected_event",
            "inbound_attempt",
            "call_intent",
            "outbox_event",
        }
    ),
}
"""The tables of each revision, to recognise a database made without the migrations: by a
release before them, or by the models' ``create_all``."""
_CREATED_IF_MISSING = frozenset({"status_work"})
"""Tables a later revision creates only where they are missing, so the models' ``create_all``
may have made them already: they do not tell which revision an unversioned database is at."""
SCHEMA_TABLES: frozenset[str] = frozenset().union(
    *_UNVERSIONED_TABLES.values(), _CREATED_IF_MISSING
)
"""Every table the migrations create: the engine's (:mod:`fsm.store.tables`) and those the
adapters declare on the same sqlmodel metadata for their journals and work."""
_SCHEMA_LOCK_SQL = "SELECT pg_advisory_xact_lock(28560232962352500)"
"""Serialises schema migrations on PostgreSQL (the key spells ``ewallet`` in ASCII)."""
_VERSION = sql.table(VERSION_TABLE, sql.column("version_num"))
_TOUCH_VERSION = sql.update(_VERSION).values(version_num=_VERSION.c.version_num)
"""A write that changes nothing, rolled back: whether the database takes writes at all."""


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic configuration for these migrations, on ``connection`` or else on ``url``.

    Commands given a connection run inside its transaction and leave committing to the caller.
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in ``ewallet_fsm_version``; ``None`` when there is none."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def migrate_to_head(engine: Engine) -> None:
    """Migrate the database of ``engine`` to the head revision in one transaction, if need be.

    Concurrent callers queue: on PostgreSQL behind an advisory lock, on SQLite behind the file's
    write lock (``BEGIN IMMEDIATE``); whoever comes second finds nothing to do.
    """
    with engine.connect() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            conn.exec_driver_sql(_SCHEMA_LOCK_SQL)
        upgrade_to_head(conn)
        conn.commit()


def touch_version(engine: Engine) -> None:
    """Write the version row unchanged and roll back: fails when the database takes no write."""
    with engine.connect() as conn:
        conn.execute(_TOUCH_VERSION)
        conn.rollback()


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema on ``connection`` to the head revision, inside its transaction.

    A database whose tables were created before migrations existed (no ``ewallet_fsm_version``) is
    first stamped with the revision its tables match, so only the missing steps run.

    Raises:
        ConfigurationError: an unversioned database holds only some of one revision's tables.
    """
    revision = current_revision(connection)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        unversioned = _revision_of_tables(connection)
        if unversioned is not None:
            command.stamp(alembic_config(connection), unversioned)
    command.upgrade(alembic_config(connection), "head")


_ADDED_COLUMNS = (("0003", "0004", "call_intent", "call_key"),)
"""Revisions that add only columns to existing tables: (from, to, table, a column added)."""


def _with_added_columns(connection: Connection, revision: str) -> str:
    """``revision``, or a later one whose added columns the tables already have."""
    for before, after, table, column in _ADDED_COLUMNS:
        if revision == before and column in _columns(connection, table):
            revision = after
    return revision


def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}


def _revision_of_tables(connection: Connection) -> str | None:
    present = set(inspect(connection).get_table_names()) & SCHEMA_TABLES
    if not present:
        return None
    for revision, tables in _UNVERSIONED_TABLES.items():
        if present - _CREATED_IF_MISSING == tables:
            return _with_added_columns(connection, revision)
    raise ConfigurationError(
        f"the database holds only some of the ewallet-fsm tables ({', '.join(sorted(present))})"
        " and no ewallet_fsm_version; finish or remove them before creating the schema"
    )


__all__ = [
    "FIRST_REVISION",
    "HEAD_REVISION",
    "SCHEMA_TABLES",
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "migrate_to_head",
    "touch_version",
    "upgrade_to_head",
]
