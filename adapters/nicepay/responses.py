"""NICEPAY's answers as frozen pydantic models, snake_case with camelCase aliases.

Responses are lenient: unknown keys are ignored, numbers become strings, and every field but
``resultCd`` (and ``tXid`` where a success is useless without it) is optional. ``resultCd`` of
``0000`` only says the call worked; a transaction's lifecycle is in an inquiry's ``status``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        coerce_numbers_to_str=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    result_cd: str = Field(alias="resultCd")
    result_msg: str = Field("", alias="resultMsg")


class ResultBody(_Response):
    """Just ``resultCd`` and ``resultMsg``: enough to tell success from failure."""


class RegistrationResponse(_Response):
    """The answer to a registration; ``tx_id`` is the key of every later call."""

    tx_id: str = Field(alias="tXid", min_length=1)
    reference_no: str | None = Field(None, alias="referenceNo")
    pay_method: str | None = Field(None, alias="payMethod")
    amount: str | None = Field(None, alias="amt")
    description: str | None = None
    trans_dt: str | None = Field(None, alias="transDt")
    trans_tm: str | None = Field(None, alias="transTm")
    mitra_cd: str | None = Field(None, alias="mitraCd")
    currency: str | None = None
    goods_name: str | None = Field(None, alias="goodsNm")
    billing_name: str | None = Field(None, alias="billingNm")
    pay_valid_dt: str | None = Field(None, alias="payValidDt")
    pay_valid_tm: str | None = Field(None, alias="payValidTm")


class InquiryResponse(_Response):
    """The answer to an inquiry; ``status`` (§6.3) is the lifecycle, ``None`` when absent."""

    tx_id: str = Field(alias="tXid", min_length=1)
    status: str | None = None
    reference_no: str | None = Field(None, alias="referenceNo")
    imid: str | None = Field(None, alias="iMid")
    pay_method: str | None = Field(None, alias="payMethod")
    mitra_cd: str | None = Field(None, alias="mitraCd")
    currency: str | None = None
    amount: str | None = Field(None, alias="amt")
    cancel_amount: str | None = Field(None, alias="cancelAmt")
    req_dt: str | None = Field(None, alias="reqDt")
    req_tm: str | None = Field(None, alias="reqTm")
    trans_dt: str | None = Field(None, alias="transDt")
    trans_tm: str | None = Field(None, alias="transTm")
    deposit_dt: str | None = Field(None, alias="depositDt")
    deposit_tm: str | None = Field(None, alias="depositTm")
    goods_name: str | None = Field(None, alias="goodsNm")
    billing_name: str | None = Field(None, alias="billingNm")


class CancelResponse(_Response):
    """The answer to a cancel. Confirm the outcome with an inquiry (status 1 or 2)."""

    tx_id: str | None = Field(None, alias="tXid")
    cancel_tx_id: str | None = Field(None, alias="canceltXid")
    reference_no: str | None = Field(None, alias="referenceNo")
    amount: str | None = Field(None, alias="amt")
    trans_dt: str | None = Field(None, alias="transDt")
    trans_tm: str | None = Field(None, alias="transTm")
    description: str | None = None


class ShopeePayRedirect(BaseModel):
    """The JSON a ``returnJsonFormat=1`` payment step answers with; other keys are undocumented.

    Attributes:
        app_url: The ShopeePay app deep link (``redirectUrlApp``), when given.
        web_url: The web link (``redirectUrlHttp``), when given.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", coerce_numbers_to_str=True, validate_by_name=True
    )

    result_cd: str | None = Field(None, alias="resultCd")
    result_msg: str | None = Field(None, alias="resultMsg")
    tx_id: str | None = Field(None, alias="tXid")
    app_url: str | None = Field(None, alias="redirectUrlApp")
    web_url: str | None = Field(None, alias="redirectUrlHttp")

    @property
    def redirect_url(self) -> str | None:
        """The app link when present (ShopeePay is a jump-app wallet), else the web link."""
        return self.app_url or self.web_url
