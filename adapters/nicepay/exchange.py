"""One JSON exchange with NICEPAY: send a body, and turn the answer into a model or a typed error.

This is the one boundary where NICEPAY's failures become the typed errors of
:mod:`adapters.errors`:

- ``httpx.TimeoutException`` -> ``ProviderTimeout`` (retryable);
- any other ``httpx.TransportError`` -> ``ProviderUnavailable`` (retryable);
- HTTP 5xx, 408 and 429 -> ``ProviderUnavailable`` (retryable), because a later try can succeed;
- any other non-2xx -> ``ProviderRejected`` (not retryable): NICEPAY answers its documented
  errors inside a 2xx body, so another status means a wrong URL or a proxy refusal that repeating
  will not fix;
- a 2xx body that is not a JSON object with a ``resultCd`` -> ``MalformedResponse`` (retryable:
  the reference counts a non-JSON body as a transport failure);
- ``resultCd`` other than ``"0000"`` -> the class NICEPAY's table names
  (:mod:`adapters.nicepay.result_codes`).

A response is parsed only when its status is 2xx and its body is a JSON object with a
``resultCd``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters.errors import (
    MalformedResponse,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.nicepay.messages import PaymentStep
from adapters.nicepay.responses import ResultBody, ShopeePayRedirect
from adapters.nicepay.result_codes import PROVIDER, error_for_result
from adapters.telemetry import note_http_status

SUCCESS: Final = "0000"
# A request timeout or rate limit is the server asking us to come back later.
_RETRYABLE_STATUS: Final = frozenset({408, 429})

R = TypeVar("R", bound=BaseModel)


def send_json(
    http: httpx.Client, url: str, body: Mapping[str, str], operation: str, *, form: bool = False
) -> httpx.Response:
    """POST ``body`` (every value a string) as JSON, or form-encoded when ``form`` is true.

    Returns:
        Whatever HTTP answer comes back.

    Raises:
        ProviderTimeout: any ``httpx.TimeoutException``.
        ProviderUnavailable: any other ``httpx.TransportError``.
    """
    try:
        response = http.post(url, data=dict(body)) if form else http.post(url, json=dict(body))
    except httpx.TimeoutException as exc:
        message = f"nicepay {operation} timed out ({type(exc).__name__})"
        raise ProviderTimeout(message, provider=PROVIDER) from exc
    except httpx.TransportError as exc:
        message = f"nicepay {operation} could not be sent ({type(exc).__name__})"
        raise ProviderUnavailable(message, provider=PROVIDER) from exc
    note_http_status(response.status_code)  # on the call's span
    return response


def parse_response(
    response: httpx.Response, model: type[R], operation: str, *, secrets: Iterable[str]
) -> R:
    """The response as ``model``, or the typed error it amounts to.

    Args:
        response: NICEPAY's answer.
        model: The response model of the operation.
        operation: The call's name, for error messages.
        secrets: Strings to scrub from ``resultMsg`` before it reaches an error (key, token).

    Raises:
        ProviderUnavailable: HTTP 5xx, 408 or 429.
        ProviderRejected: any other non-2xx status, or a ``resultCd`` other than ``0000``
            (the subclass NICEPAY's table names; transport codes are
            :class:`~adapters.errors.NicepayUnavailable` instead).
        MalformedResponse: the body is not a JSON object with a ``resultCd``, or a success lacks
            a field the model requires.
    """
    status = response.status_code
    document = json_object(response, operation)
    try:
        head = ResultBody.model_validate(document)
    except ValidationError:
        raise malformed(operation, status, "JSON without a resultCd") from None
    raise_for_result(head, operation, status, secrets=secrets)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        fields = sorted({".".join(map(str, error["loc"])) for error in exc.errors()})
        raise malformed(operation, status, f"a success without {', '.join(fields)}") from None


def fetch_payment_links(
    http: httpx.Client, step: PaymentStep, operation: str, *, secrets: Iterable[str]
) -> ShopeePayRedirect:
    """Submit a ``returnJsonFormat=1`` payment step and read its app and web links.

    The step is POSTed as a form, which NICEPAY accepts like the GET URL, so that the token
    stays out of URLs that HTTP libraries and proxies log.

    Raises:
        ProviderError: as :func:`parse_response`, judging ``resultCd`` only when present;
            :class:`MalformedResponse` when neither link is given.
    """
    response = send_json(http, step.url, step.fields, operation, form=True)
    document = json_object(response, operation)
    status = response.status_code
    # The JSON's keys are undocumented: judge a resultCd only when one is present.
    if "resultCd" in document:
        raise_for_result(ResultBody.model_validate(document), operation, status, secrets=secrets)
    links = ShopeePayRedirect.model_validate(document)
    if links.redirect_url is None:
        raise malformed(operation, status, "JSON without redirectUrlApp or redirectUrlHttp")
    return links


def json_object(response: httpx.Response, operation: str) -> dict[str, object]:
    """The body of a 2xx ``response`` as a JSON object.

    Raises:
        ProviderUnavailable: HTTP 5xx, 408 or 429.
        ProviderRejected: any other non-2xx status.
        MalformedResponse: the body is not a JSON object.
    """
    status = response.status_code
    _raise_for_http_status(status, operation)
    try:
        document = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed(operation, status, "a body that is not JSON") from None
    if not isinstance(document, dict):
        raise malformed(operation, status, "JSON that is not an object")
    return document


def raise_for_result(
    head: ResultBody, operation: str, status: int, *, secrets: Iterable[str]
) -> None:
    """Raise the typed error of a ``resultCd`` other than ``0000``; return on success."""
    if head.result_cd != SUCCESS:
        message = scrub(head.result_msg, secrets)
        raise error_for_result(head.result_cd, message, operation=operation, http_status=status)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``[redacted]``."""
    # NICEPAY has no reason to echo the key or token, but resultMsg is copied into errors and logs.
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _raise_for_http_status(status: int, operation: str) -> None:
    if 200 <= status < 300:
        return
    message = f"nicepay {operation} answered HTTP {status}"
    if status >= 500 or status in _RETRYABLE_STATUS:
        raise ProviderUnavailable(message, provider=PROVIDER, http_status=status)
    raise ProviderRejected(message, provider=PROVIDER, http_status=status, retryable=False)


def malformed(operation: str, status: int, what: str) -> MalformedResponse:
    """The error for an answer that cannot be used."""
    message = f"nicepay {operation} answered {what}"
    return MalformedResponse(message, provider=PROVIDER, http_status=status)
