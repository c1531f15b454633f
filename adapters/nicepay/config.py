"""Where NICEPAY lives and who we are to it: base URL, ``iMid`` and ``merchantKey`` as one unit.

A merchant lives on the classic *or* the cloud stack, and the two stacks issue different
credentials, so the base URL travels with the ``iMid`` and key it belongs to. The key is a
:class:`~pydantic.SecretStr`: it never shows in a repr, a log record or a JSON dump. How
patiently the client retries an inquiry is configured here too (:class:`InquiryRetry`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from fsm.errors import ConfigurationError

#: Every NICEPAY path is appended to a base URL that ends in this segment.
BASE_PATH: Final = "/nicepay"


class Environment(StrEnum):
    """The four NICEPAY hosts of the reference (§2); each value is a ready base URL."""

    SANDBOX = "https://dev.nicepay.co.id/nicepay"
    PRODUCTION = "https://www.nicepay.co.id/nicepay"
    CLOUD_SANDBOX = "https://dev-services.nicepay.co.id/nicepay"
    CLOUD_PRODUCTION = "https://services.nicepay.co.id/nicepay"


def simulator_base_url(port: int, host: str = "127.0.0.1") -> str:
    """The base URL of a NICEPAY simulator listening on ``host:port`` (loopback by default).

    Args:
        port: The TCP port the simulator listens on.
        host: A host name or IP address; IPv6 literals are bracketed for you.

    Returns:
        ``http://<host>:<port>/nicepay``.

    Raises:
        ValueError: ``port`` is outside 1-65535.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is outside 1-65535")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and literal.version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}{BASE_PATH}"


class NicepayCredentials(BaseModel):
    """One NICEPAY configuration unit: base URL, merchant ID and merchant key.

    Attributes:
        imid: The merchant ID (``iMid``), up to 10 letters and digits.
        merchant_key: The shared secret in every ``merchantToken``; never logged or dumped.
        base_url: An ``Environment`` value, or the simulator's URL; it must end in ``/nicepay``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    imid: str = Field(pattern=r"^[A-Za-z0-9]{1,10}$")
    merchant_key: SecretStr
    base_url: str = Environment.SANDBOX.value

    @field_validator("merchant_key")
    @classmethod
    def _key_present(cls, key: SecretStr) -> SecretStr:
        # A token signed with an empty key would be accepted by nobody; fail at configuration.
        if not key.get_secret_value():
            raise ValueError("merchant_key is empty")
        return key

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_url_shape(cls, value: object) -> str:
        text = str(value).rstrip("/")  # str() turns an Environment member into its URL
        if not text.startswith(("https://", "http://")):
            raise ValueError(f"base_url {text!r} is not an http(s) URL")
        if not text.endswith(BASE_PATH):
            raise ValueError(f"base_url {text!r} must end in {BASE_PATH!r}")
        return text

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (e.g. ``/direct/v2/inquiry``) under the base URL."""
        return f"{self.base_url}/{path.lstrip('/')}"


@dataclass(frozen=True)
class InquiryRetry:
    """How often and how patiently an inquiry is retried after a retryable failure.

    Delays double from ``base_delay`` up to ``max_delay``, without jitter: one payment is polled
    by one caller, so there is no herd to spread, and fixed delays keep runs reproducible.

    Attributes:
        attempts: Total tries, the first included; 1 disables retrying.
        base_delay: Seconds to wait after the first failure.
        max_delay: The longest single wait, in seconds.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"inquiry retry needs at least 1 attempt, not {self.attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ConfigurationError("inquiry retry needs 0 <= base_delay <= max_delay")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed tries (1 or more)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (failures - 1)))
