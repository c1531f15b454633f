"""NICEPAY's code tables as the simulator answers them: mitraCd, result codes, status codes.

The inquiry ``status`` of a transaction is its state's code in the general V2 table, for every
wallet (reference §6.3): void, refund and expiry included, LinkAja and AstraPay too. Only an
AstraPay refund may be reported as ``8``, AstraPay's own code for it, when so configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from adapters.simulator.flow import STATUS_CODE, NicepayState
from fsm.flows import Wallet

PAY_METHOD = "05"
CURRENCY = "IDR"
SUCCESS = "0000"

MITRA_CD: Mapping[str, Wallet] = MappingProxyType(
    {
        "OVOE": Wallet.OVO,
        "DANA": Wallet.DANA,
        "LINK": Wallet.LINKAJA,
        "ESHP": Wallet.SHOPEEPAY,
        "ASTR": Wallet.ASTRAPAY,
    }
)
"""Wallets by NICEPAY ``mitraCd``; ``ASTR`` only through ``linkInitiate.do``."""

MITRA_OF: Mapping[Wallet, str] = MappingProxyType({w: code for code, w in MITRA_CD.items()})

RESULT_MESSAGE: Mapping[str, str] = MappingProxyType(
    {
        SUCCESS: "SUCCESS",
        "9007": "amt is undefined",
        "9008": "Amount must be digits without decimals",
        "9009": "referenceNo already exists",
        "9010": "Invalid merchantToken",
        "9011": "Invalid iMid",
        "9012": "payMethod is not activated for this merchant",
        "9019": "callBackUrl is undefined",
        "9020": "dbProcessUrl is undefined",
        "9022": "Invalid cartData",
        "9023": "amt does not match the total of cartData",
        "9031": "timeStamp check failed",
        "9301": "Invalid cancelType",
        "9314": "Cannot cancel this transaction",
        "9319": "Cancel amount does not match the amount to cancel",
        "9321": "Cancel amount exceeds the amount left",
        "9334": "Cancellation period exceeded (90 days)",
        "9751": "Invalid parameter",
        "9752": "Payment failed",
    }
)

_UNDEFINED_FIELDS = (
    ("currency", "9013"),
    ("referenceNo", "9014"),
    ("goodsNm", "9015"),
    ("billingNm", "9016"),
    ("billingPhone", "9017"),
    ("billingEmail", "9018"),
    ("callBackUrl", "9019"),
    ("dbProcessUrl", "9020"),
    ("userIP", "9024"),
    ("billingCity", "9025"),
    ("billingState", "9026"),
    ("billingPostCd", "9027"),
    ("billingCountry", "9028"),
)
UNDEFINED_CODE: Mapping[str, str] = MappingProxyType(dict(_UNDEFINED_FIELDS))
"""The "Undefined" (missing field) codes, in the documented order (the mapping is unconfirmed)."""

STATUS_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "0": "paid",
        "1": "void",
        "2": "refund",
        "3": "unpaid",
        "4": "processing",
        "5": "expired",
        "8": "failed",
        "9": "init",
    }
)


def status_code(wallet: Wallet, state: str, *, astrapay_refund: str = "2") -> str:
    """The inquiry ``status`` NICEPAY reports for ``state`` of a ``wallet`` transaction.

    Every wallet reports the general table; ``astrapay_refund`` is the code of an AstraPay
    refund, ``2`` as in that table or ``8`` as in AstraPay's own (the reference notes the
    conflict).
    """
    nicepay_state = NicepayState(state)
    if wallet is Wallet.ASTRAPAY and nicepay_state is NicepayState.REFUNDED:
        return astrapay_refund
    return STATUS_CODE[nicepay_state]


def status_text(state: str) -> str:
    """The inquiry ``resultMsg`` for ``state``: the general table's word, whatever the code."""
    return STATUS_TEXT[STATUS_CODE[NicepayState(state)]]


def message(code: str) -> str:
    """The ``resultMsg`` for ``code``; the "Undefined" codes name their field."""
    for field, undefined in _UNDEFINED_FIELDS:
        if undefined == code:
            return f"{field} is undefined"
    return RESULT_MESSAGE.get(code, "Error")
