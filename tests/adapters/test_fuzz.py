"""Property-based fuzzing of the notification and callback handler (Hypothesis).

Thousands of generated requests: random bytes; form, JSON and query-string bodies of random
fields and of the real ones with hostile values; JSON values of every type; signed notifications
with one field dropped, replaced, added or retyped; oversized bodies; random content types and
client addresses. Whatever arrives, the handler answers (it never raises) with a status in a
fixed set, a refusal carries a typed error, every request is recorded exactly once, no payment or
link moves unless the request carries the valid token for it (computed here with hashlib,
independently of the library), and neither the merchant key nor a genuine token is ever stored
or answered.

One database per module and backend holds a few registered payments and an account link; they
move on as valid notifications arrive, so each example compares the versions around one request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text

from adapters.inbound.asgi import Reply
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.journal import INBOUND_TABLE
from adapters.inbound.parsing import MAX_BODY_BYTES, InboundRequest
from adapters.inbound.return_page import CustomerOutcome
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import ServiceRig, open_nicepay, service_rig
from tests.adapters.pages import shown_outcome
from tests.adapters.values import AMOUNT, IMID, KEY_TEXT, link_order, payment_order, sha
from tests.conftest import SCHEMA_TABLES, database, postgres_url_or_skip

OUTCOMES = {outcome.value for outcome in CustomerOutcome}

EXAMPLES = {"sqlite": 2500, "postgres": 400}
"""Notifications generated per backend; callbacks get a fifth of that."""

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
PHONE = "08123456789"
ALLOWED = "103.20.51.0/24"
REFUSALS = frozenset(
    {
        "BodyTooLarge",
        "MissingFields",
        "NotificationPayloadError",
        "NotificationSignatureError",
        "SourceNotAllowed",
        "TokenInQuery",
        "UnknownNotificationStatus",
        "UnknownTransaction",
    }
)
NOTIFICATION_STATUSES = frozenset({200, 400, 401, 403, 404, 413})
CALLBACK_STATUSES = frozenset({200, 400, 404, 413})
FIELDS = (
    "tXid",
    "referenceNo",
    "amt",
    "iMid",
    "merchantToken",
    "status",
    "payMethod",
    "currency",
    "goodsNm",
    "transDt",
    "transTm",
    "matchCl",
    "mitraCd",
    "billingPhone",
    "mandateID",
    "resultCd",
)
_INBOUND = INBOUND_TABLE


@dataclass
class World:
    """The module's database, its handlers, and what a valid request for each instance is."""

    rig: ServiceRig
    handler: NotificationHandler
    guarded: NotificationHandler
    targets: list[Instance]
    tokens: dict[str, str] = field(default_factory=dict)  # instance id -> its valid token

    def valid(self, target: Instance) -> dict[str, str]:
        """The parameters of a correctly signed notification for ``target``."""
        if target.tx_id is None:  # the account link: T4
            return {
                "referenceNo": target.reference_no or "",
                "billingPhone": PHONE,
                "iMid": IMID,
                "status": "0",
                "mandateID": "7700123456789",
                "merchantToken": self.tokens[target.id],
            }
        return {
            "tXid": target.tx_id,
            "referenceNo": target.reference_no or "",
            "payMethod": "05",
            "amt": AMOUNT,
            "iMid": IMID,
            "currency": "IDR",
            "transDt": "20250201",
            "transTm": "003512",
            "matchCl": "1",
            "status": "0",
            "mitraCd": "DANA",
            "merchantToken": self.tokens[target.id],
        }


def _store(backend: str, directory: Path) -> Iterator[SqlStore]:
    if backend == "sqlite":
        store = SqlStore(f"sqlite:///{directory / 'fuzz.sqlite3'}", sqlite_synchronous="OFF")
        store.create_schema()
        yield store
        store.dispose()
        return
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    store = SqlStore(f"{base}?options=-csearch_path%3D{schema}")
    try:
        store.create_schema()
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend: str = request.param
    for store in _store(backend, tmp_path_factory.mktemp("fuzz")):
        with open_nicepay() as nicepay:
            rig = service_rig(store, nicepay)
            payments = [
                rig.service.start_payment(
                    payment_order("dana", f"ORD-F{n}"), payment_id=f"pay-f{n}"
                )
                for n in (1, 2, 3)
            ]
            link = rig.service.start_link(link_order("LNK-F"), link_id="link-f").instance
            targets = [payment.instance for payment in payments] + [link]
            world = World(
                rig=rig,
                handler=NotificationHandler(rig.service),
                guarded=NotificationHandler(rig.service, allowed_sources=[ALLOWED]),
                targets=targets,
            )
            for target in targets:
                world.tokens[target.id] = (
                    sha(IMID, target.reference_no or "", PHONE, KEY_TEXT)
                    if target.tx_id is None
                    else sha(IMID, target.tx_id, target.amount or "", KEY_TEXT)
                )
            yield world


# --- strategies -------------------------------------------------------------------------------


def _content_types() -> st.SearchStrategy[str]:
    known = [FORM, JSON, "", "text/plain", f"{JSON}; charset=utf-8", f"{FORM}; charset=UTF-8"]
    odd = ["multipart/form-data; boundary=x", "application/xml", "APPLICATION/JSON", ";;"]
    return st.one_of(st.sampled_from(known + odd), st.text(max_size=30))


def _values(world: World) -> st.SearchStrategy[str]:
    tokens = list(world.tokens.values())
    known = [
        *(t.tx_id for t in world.targets if t.tx_id),
        *(t.reference_no or "" for t in world.targets),
        AMOUNT,
        "12000.00",
        "012000",
        "-12000",
        "1e4",
        "0",
        "1",
        "7",
        "",
        IMID,
        "OTHERMID01",
        KEY_TEXT,
        f"prefix {KEY_TEXT} suffix",
        *tokens,
        tokens[0].upper(),
        tokens[0][:-1],
        "\x00",
        "%00",
        "\ufeff",
        "null",
        "[]",
        "{}",
        "a" * 300,
        "9" * 5000,
    ]
    return st.one_of(st.sampled_from(known), st.text(max_size=60))


def _keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(FIELDS), st.text(max_size=20))


def _json_values(world: World) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        _values(world),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=8), children, max_size=3),
        ),
        max_leaves=6,
    )


@st.composite
def _encoded(draw: st.DrawFn, params: Mapping[str, Any]) -> InboundRequest:
    """``params`` as a form, JSON or query-string request, under a drawn content type."""
    how = draw(st.sampled_from(["form", "json", "query", "split"]))
    client_ip = draw(st.sampled_from([None, "127.0.0.1", "103.20.51.33", "::1", "not-an-ip"]))
    if how == "json":
        body, natural = json.dumps(dict(params)).encode(), JSON
    else:
        body, natural = urlencode({k: str(v) for k, v in params.items()}).encode(), FORM
    content_type = draw(st.one_of(st.just(natural), _content_types()))
    if how == "query":
        return InboundRequest(query=body.decode(), content_type=content_type, client_ip=client_ip)
    if how == "split":  # half in the query string, half in the body
        items = [(k, str(v)) for k, v in params.items()]
        cut = draw(st.integers(0, len(items)))
        return InboundRequest(
            body=urlencode(items[cut:]).encode(),
            query=urlencode(items[:cut]),
            content_type=content_type,
            client_ip=client_ip,
        )
    return InboundRequest(body=body, content_type=content_type, client_ip=client_ip)


@st.composite
def _mutated_valid(draw: st.DrawFn, world: World) -> InboundRequest:
    """A correctly signed notification, often with one field dropped, replaced, added, retyped."""
    params: dict[str, Any] = world.valid(draw(st.sampled_from(world.targets)))
    change = draw(st.sampled_from(["none", "drop", "replace", "add", "retype"]))
    name = draw(st.sampled_from(sorted(params)))
    if change == "drop":
        del params[name]
    elif change == "replace":
        params[name] = draw(_values(world))
    elif change == "add":
        params[draw(_keys())] = draw(_values(world))
    elif change == "retype":
        params[name] = draw(_json_values(world))
    return draw(_encoded(params))


@st.composite
def _hostile_ids(draw: st.DrawFn, world: World) -> InboundRequest:
    """A signed notification whose tXid or referenceNo, what is looked up, is hostile text."""
    target = draw(st.sampled_from(world.targets))
    params = world.valid(target)
    genuine = target.tx_id or target.reference_no or ""
    hostile = draw(
        st.one_of(
            st.sampled_from(
                [
                    genuine + "\x00",
                    "\x00",
                    genuine + "%00",
                    genuine.upper(),
                    " " + genuine,
                    "9" * 5000,
                ]
            ),
            st.text(min_size=1, max_size=80),
            st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=10),
        )
    )
    params[draw(st.sampled_from(["tXid", "referenceNo"]))] = hostile
    return draw(_encoded(params))


@st.composite
def _oversized(draw: st.DrawFn, world: World) -> InboundRequest:
    params = world.valid(draw(st.sampled_from(world.targets)))
    size = draw(st.integers(MAX_BODY_BYTES - 400, MAX_BODY_BYTES + 400))
    where = draw(st.sampled_from(["body", "query"]))
    padded = urlencode({**params, "goodsNm": "x" * size})
    if where == "query":
        return InboundRequest(query=padded)
    return InboundRequest(body=padded.encode(), content_type=FORM)


def requests(world: World) -> st.SearchStrategy[InboundRequest]:
    random_bytes = st.builds(
        InboundRequest, body=st.binary(max_size=400), content_type=_content_types()
    )
    random_query = st.builds(InboundRequest, query=st.text(max_size=200))
    random_form = st.dictionaries(_keys(), _values(world), max_size=12).flatmap(_encoded)
    random_json = st.dictionaries(_keys(), _json_values(world), max_size=10).flatmap(_encoded)
    return st.one_of(
        random_bytes,
        random_query,
        random_form,
        random_json,
        _mutated_valid(world),
        _mutated_valid(world),
        _hostile_ids(world),
        _oversized(world),
    )


# --- the properties -----------------------------------------------------------------------------


def _texts(request: InboundRequest) -> list[str]:
    """What a token could hide in: the body and the query, raw and form-decoded, lowercased."""
    body = request.body.decode("latin-1")
    raw = [body, request.query]
    return [part.lower() for text in raw for part in (text, unquote_plus(text))]


def _carries_token(request: InboundRequest, token: str) -> bool:
    return any(token in part for part in _texts(request))


def _versions(world: World) -> dict[str, tuple[str, int]]:
    return {i.id: (i.state, i.version) for i in database(world.rig.engine).list_instances()}


def _recorded(world: World) -> int:
    with database(world.rig.engine).engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(_INBOUND)).scalar_one())


@dataclass
class Tally:
    replies: dict[int, int] = field(default_factory=dict)
    moved: int = 0

    def add(self, reply: Reply, moved: bool) -> None:
        self.replies[reply.status] = self.replies.get(reply.status, 0) + 1
        self.moved += moved


def _check_reply(reply: Reply, allowed: frozenset[int]) -> None:
    assert isinstance(reply, Reply)
    assert reply.status in allowed, reply
    if reply.status != 200:
        assert set(reply.body) == {"error", "message"}, reply.body
        assert reply.body["error"] in REFUSALS, reply.body
    assert KEY_TEXT not in json.dumps(reply.body)


def _check_recorded(world: World, before: int, reply: Reply) -> None:
    assert _recorded(world) == before + 1, "every request is recorded exactly once"
    (attempt,) = world.rig.service.inbound.latest(limit=1)
    assert attempt.status_code == reply.status
    assert attempt.error == reply.body.get("error")
    assert attempt.parameters.get("merchantToken") in (None, "[redacted]")
    assert KEY_TEXT not in json.dumps([attempt.reason, attempt.parameters])


def _assert_no_secret_stored(world: World) -> None:
    """Neither the key nor any genuine token (in either case) is in any column of any row."""
    secrets = [KEY_TEXT, *world.tokens.values(), *(t.upper() for t in world.tokens.values())]
    with database(world.rig.engine).engine.connect() as conn:
        for table in SCHEMA_TABLES:
            for row in conn.execute(select(table)):
                text = json.dumps(row._asdict(), default=str)
                assert not [secret for secret in secrets if secret in text], table.name


def _examples(world: World) -> int:
    return EXAMPLES["sqlite" if database(world.rig.engine).dialect == "sqlite" else "postgres"]


def test_no_request_moves_anything_without_its_valid_token(world: World) -> None:
    tally = Tally()

    @settings(
        max_examples=_examples(world),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(world), guarded=st.integers(0, 9))
    def notification_property(request: InboundRequest, guarded: int) -> None:
        handler = world.guarded if guarded == 0 else world.handler  # the allowlist, now and then
        before, recorded = _versions(world), _recorded(world)

        reply = handler.handle_notification(request)

        _check_reply(reply, NOTIFICATION_STATUSES)
        after = _versions(world)
        moved = [target for target in world.targets if after[target.id] != before[target.id]]
        for target in moved:
            assert _carries_token(request, world.tokens[target.id]), (target.id, request)
        if reply.status == 200:  # verified: the request carries some instance's valid token
            assert any(_carries_token(request, token) for token in world.tokens.values())
        else:
            assert moved == []
        _check_recorded(world, recorded, reply)
        tally.add(reply, bool(moved))

    notification_property()
    _assert_no_secret_stored(world)
    assert tally.moved > 0, "valid notifications were generated and applied"
    assert {200, 400, 401, 404, 413} <= set(tally.replies), tally.replies


def test_no_callback_raises_or_stores_the_key(world: World) -> None:
    tally = Tally()

    @settings(
        max_examples=_examples(world) // 5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(world))
    def callback_property(request: InboundRequest) -> None:
        recorded = _recorded(world)
        reply = world.handler.handle_callback(request)
        _check_reply(reply, CALLBACK_STATUSES)
        if reply.status == 200:  # the status page: no JSON, no internal id
            assert (reply.body, shown_outcome(reply.html) in OUTCOMES) == ({}, True)
        _check_recorded(world, recorded, reply)
        tally.add(reply, moved=False)

    callback_property()
    _assert_no_secret_stored(world)
    assert {200, 400, 404, 413} <= set(tally.replies), tally.replies
