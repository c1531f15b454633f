"""NICEPAY's code tables as the simulator answers them: mitraCd, result codes, status codes.

The inquiry ``status`` of a transaction is its state's code in the general V2 table, narrowed to
the wallet's subset (reference §6.3): OVO reports only ``0 1 8 9`` (and ``5`` for an expired
push, which §14 allows), DANA has no ``4``, LinkAja no ``4`` or ``5``, and AstraPay knows only
``0`` paid, ``3`` unpaid and ``8`` (refund, and here also every other ending, since the subset
has nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fsm.flows import STATUS_CODE, NicepayState, Wallet

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

_NARROWED: Mapping[Wallet, Mapping[NicepayState, str]] = MappingProxyType(
    {
        Wallet.OVO: {
            NicepayState.UNPAID: "9",
            NicepayState.PROCESSING: "9",
            # §14: an unanswered push ends in 0 or 8, "possibly 5"; the window passing is an
            # expiry, so 5 it is (the merchant's table accepts both).
            NicepayState.REFUNDED: "1",
        },
        Wallet.DANA: {NicepayState.PROCESSING: "3"},
        Wallet.LINKAJA: {NicepayState.PROCESSING: "3", NicepayState.EXPIRED: "8"},
        Wallet.SHOPEEPAY: {},
        Wallet.ASTRAPAY: {
            NicepayState.INITIATED: "3",
            NicepayState.PROCESSING: "3",
            NicepayState.FAILED: "8",
            NicepayState.EXPIRED: "8",
            NicepayState.VOIDED: "8",
            NicepayState.REFUNDED: "8",
        },
    }
)

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


_REVERSED = frozenset({NicepayState.VOIDED, NicepayState.REFUNDED})


def status_code(wallet: Wallet, state: str) -> str:
    """The inquiry ``status`` NICEPAY reports for ``state`` of a ``wallet`` transaction."""
    nicepay_state = NicepayState(state)
    return _NARROWED[wallet].get(nicepay_state, STATUS_CODE[nicepay_state])


def status_text(wallet: Wallet, state: str) -> str:
    """The inquiry ``resultMsg`` for ``state`` (AstraPay's ``8`` reads "refund" for a refund)."""
    code = status_code(wallet, state)
    if wallet is Wallet.ASTRAPAY and code == "8" and state in _REVERSED:
        return "refund"
    return STATUS_TEXT[code]


def message(code: str) -> str:
    """The ``resultMsg`` for ``code``; the "Undefined" codes name their field."""
    for field, undefined in _UNDEFINED_FIELDS:
        if undefined == code:
            return f"{field} is undefined"
    return RESULT_MESSAGE.get(code, "Error")
