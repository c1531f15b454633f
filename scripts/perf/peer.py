"""The peer a user would otherwise write: ``transitions`` models persisted through the sqlmodel ORM.

A payment is a SQLModel row in a schema of the peer's own: a payments table, and a log table with
a unique key on the idempotency key, as a careful user declares them. The ``transitions`` Machine
is built once from the same flow, its one model a plain carrier of a state (pydantic models refuse
the triggers ``transitions`` binds onto a model), the actor a condition of each transition. Each
event opens a ``Session``, loads the row (``FOR UPDATE`` on PostgreSQL), sets the carrier to the
stored state, triggers the event, writes state, version, deadline and a log row, and commits. That
is the work ``Engine.fire`` does on the durable workload, written the way these libraries usually
meet (and without re-binding a model per event, which would cost more than the rest), so the
report shows what the engine saves against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
from sqlalchemy import JSON, DateTime, Engine, UniqueConstraint, create_engine, event, insert
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel
from transitions import Machine

from fsm.definition import TransitionSpec
from fsm.flows import PaymentState
from perf.fixtures import FLOW, WALLET, dict_flow, payment_id, plain_pg_url


class _PeerModel(SQLModel, registry=registry()):
    """The peer's own tables, apart from the library's metadata."""


class PeerPayment(_PeerModel, table=True):
    """A payment as the peer stores it."""

    __tablename__ = "peer_payment"

    id: str = Field(primary_key=True)
    state: str
    version: int
    wallet: str
    amount: str
    deadline_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class PeerTransition(_PeerModel, table=True):
    """One applied event, as the peer logs it."""

    __tablename__ = "peer_transition"
    __table_args__ = (UniqueConstraint("payment_id", "idempotency_key"),)

    payment_id: str = Field(foreign_key="peer_payment.id", primary_key=True)
    seq: int = Field(primary_key=True)
    event: str
    source: str
    dest: str
    actor: str
    idempotency_key: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))


class _Carrier:
    """What the Machine drives: the row's state, copied in and out."""

    trigger: Callable[..., bool]
    """Bound by ``Machine.add_model`` (declared only: it skips names already taken)."""

    def __init__(self, state: str) -> None:
        self.state = state


def _actor_in(allowed: frozenset[str]) -> Callable[[Any], bool]:
    def condition(event_data: Any) -> bool:
        return event_data.kwargs.get("actor") in allowed

    return condition


def _transition(spec: TransitionSpec) -> dict[str, Any]:
    return {
        "trigger": str(spec.event),
        "source": [str(source) for source in spec.sources],
        "dest": str(spec.dest),
        "conditions": [_actor_in(frozenset(str(actor) for actor in spec.actors))],
    }


def machine() -> Machine:
    """The flow's Machine, with no model yet."""
    return Machine(
        model=None,
        states=[str(state.name) for state in FLOW.states],
        transitions=[_transition(spec) for spec in FLOW.transitions],
        initial=str(FLOW.initial),
        auto_transitions=False,
        send_event=True,
    )


class SqlModelPeer:
    """``fire(instance_id, event, actor, key, payload)`` the peer's way, on ``engine``."""

    NAME: ClassVar[str] = "transitions + sqlmodel"
    NOTE: ClassVar[str] = "a Session per event: load, Machine, state + log row, commit"

    def __init__(self, engine: Engine, *, lock_rows: bool) -> None:
        """Fire on ``engine``'s seeded tables; ``lock_rows`` loads ``FOR UPDATE``."""
        self.engine = engine
        self._lock_rows = lock_rows
        self._carrier = _Carrier(str(FLOW.initial))
        machine().add_model(self._carrier)
        self._deadlines = dict_flow().deadlines

    def __call__(
        self, instance_id: str, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> tuple[str, int]:
        """Apply one event in one session; raises ``LookupError`` or ``PermissionError``."""
        with Session(self.engine) as session:
            row = session.get(PeerPayment, instance_id, with_for_update=self._lock_rows)
            if row is None:
                raise LookupError(instance_id)
            source, carrier = row.state, self._carrier
            carrier.state = source
            if not carrier.trigger(event, actor=actor):  # MachineError when not allowed here
                raise PermissionError(actor)
            now, dest, seq = datetime.now(UTC), carrier.state, row.version + 1
            deadline = self._deadlines.get(dest)
            row.state, row.version, row.updated_at = dest, seq, now
            row.deadline_at = None if deadline is None else now + deadline
            session.add(
                PeerTransition(
                    payment_id=instance_id,
                    seq=seq,
                    event=event,
                    source=source,
                    dest=dest,
                    actor=actor,
                    idempotency_key=key,
                    payload=dict(payload),
                    occurred_at=now,
                )
            )
            session.commit()
            return dest, seq

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()


def _seed(engine: Engine, count: int) -> None:
    _PeerModel.metadata.create_all(engine)
    now = datetime.now(UTC)
    rows = [
        {
            "id": payment_id(number),
            "state": str(PaymentState.PAYMENT_PENDING),
            "version": 0,
            "wallet": WALLET,
            "amount": "150000",
            "created_at": now,
            "updated_at": now,
        }
        for number in range(count)
    ]
    with Session(engine) as session:
        session.execute(insert(PeerPayment), rows)
        session.commit()


def sqlite_peer(path: str, synchronous: str, count: int) -> SqlModelPeer:
    """The peer on a SQLite file of its own, with the store's pragmas, ``count`` payments seeded."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    _seed(engine, count)
    return SqlModelPeer(engine, lock_rows=False)


def postgres_peer(base_url: str, schema: str, count: int) -> SqlModelPeer:
    """The peer in a fresh PostgreSQL ``schema``, ``count`` payments seeded."""
    with psycopg.connect(plain_pg_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    engine = create_engine(f"{base_url}?options=-csearch_path%3D{schema}")
    _seed(engine, count)
    return SqlModelPeer(engine, lock_rows=True)
