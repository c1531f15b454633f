from fsm import Engine, SqlStore
from fsm.flows import PaymentEvent


def test_payment_moves_and_persists(store: SqlStore) -> None:
    engine = Engine(store)
    payment = engine.start("ewallet_payment", wallet="ovo", amount=10000)
    result = engine.fire(
        payment.id, PaymentEvent.SEND_REGISTRATION, actor="merchant", idempotency_key="k1"
    )
    assert result.state == "registration_sent"
    assert engine.get(payment.id).version == 1
