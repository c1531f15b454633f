"""Signed NICEPAY request bodies and browser steps, built without any I/O.

Each function takes the business fields, the merchant's ``iMid`` and key and a ``timeStamp``, and
returns exactly the strings to send, ``merchantToken`` included, signed with the reference's
formula (:mod:`adapters.nicepay.tokens`). :class:`~adapters.nicepay.client.NicepayClient` adds
the clock and the transport; a second client (an async one) would reuse these unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from adapters.nicepay.messages import (
    PAY_METHOD_EWALLET,
    BrowserForm,
    LinkEnableRequest,
    LinkInitiateRequest,
    RegistrationRequest,
)
from adapters.nicepay.tokens import (
    cancel_token,
    link_enable_token,
    link_initiate_token,
    registration_token,
)


def registration_body(
    request: RegistrationRequest, *, imid: str, key: SecretStr, timestamp: str
) -> dict[str, str]:
    """``/direct/v2/registration``: the business fields between the auth fields, signed with T1."""
    token = registration_token(timestamp, imid, request.reference_no, request.amount, key)
    return {"timeStamp": timestamp, "iMid": imid, **request.wire_fields(), "merchantToken": token}


def inquiry_body(
    tx_id: str, reference_no: str, amount: str, *, imid: str, key: SecretStr, timestamp: str
) -> dict[str, str]:
    """``/direct/v2/inquiry`` for one transaction, signed with T1."""
    return {
        "timeStamp": timestamp,
        "tXid": tx_id,
        "iMid": imid,
        "referenceNo": reference_no,
        "amt": amount,
        "merchantToken": registration_token(timestamp, imid, reference_no, amount, key),
    }


def cancel_body(
    tx_id: str,
    reference_no: str,
    amount: str,
    *,
    partial: bool,
    reason: str,
    imid: str,
    key: SecretStr,
    timestamp: str,
) -> dict[str, str]:
    """``/direct/v2/cancel`` of ``amount`` (``cancelType`` 2 if partial, else 1), signed with T2."""
    return {
        "timeStamp": timestamp,
        "tXid": tx_id,
        "iMid": imid,
        "payMethod": PAY_METHOD_EWALLET,
        "cancelType": "2" if partial else "1",
        "amt": amount,
        "referenceNo": reference_no,
        "cancelMsg": reason,
        "merchantToken": cancel_token(timestamp, imid, tx_id, amount, key),
    }


def payment_step_fields(
    tx_id: str,
    reference_no: str,
    amount: str,
    callback_url: str,
    *,
    return_json: bool,
    imid: str,
    key: SecretStr,
    timestamp: str,
) -> dict[str, str]:
    """The fields of the browser's ``/direct/v2/payment`` step, signed with T1."""
    fields = {
        "timeStamp": timestamp,
        "tXid": tx_id,
        "merchantToken": registration_token(timestamp, imid, reference_no, amount, key),
        "callBackUrl": callback_url,
    }
    if return_json:
        fields["returnJsonFormat"] = "1"
    return fields


def link_enable_form(
    url: str, request: LinkEnableRequest, *, imid: str, key: SecretStr, timestamp: str
) -> BrowserForm:
    """The AstraPay account-link form (``linkEnable.do``), signed with T4."""
    token = link_enable_token(imid, request.reference_no, request.billing_phone, key)
    return _form(url, request.wire_fields(), token, imid=imid, timestamp=timestamp)


def link_initiate_form(
    url: str, request: LinkInitiateRequest, *, imid: str, key: SecretStr, timestamp: str
) -> BrowserForm:
    """The AstraPay mandate payment form (``linkInitiate.do``), signed with T5."""
    token = link_initiate_token(imid, request.reference_no, request.amount, key)
    return _form(url, request.wire_fields(), token, imid=imid, timestamp=timestamp)


def _form(
    url: str, fields: Mapping[str, str], token: str, *, imid: str, timestamp: str
) -> BrowserForm:
    auth = {"timeStamp": timestamp, "iMid": imid}
    return BrowserForm(url=url, fields={**auth, **fields, "merchantToken": token})


__all__ = [
    "cancel_body",
    "inquiry_body",
    "link_enable_form",
    "link_initiate_form",
    "payment_step_fields",
    "registration_body",
]
