"""Message models: strict requests, lenient responses, browser steps, and the configuration."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import SecretStr, ValidationError

from adapters.nicepay.config import Environment, NicepayCredentials, simulator_base_url
from adapters.nicepay.messages import (
    BrowserForm,
    CartItem,
    Delivery,
    LinkEnableRequest,
    PaymentStep,
    amount_string,
    cart_data,
)
from adapters.nicepay.responses import InquiryResponse, RegistrationResponse, ShopeePayRedirect
from tests.adapters.values import billing, registration

# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [("10000", "10000"), (10000, "10000"), (0, "0")])
def test_amounts_are_exact_digit_strings(value: str | int, text: str) -> None:
    assert amount_string(value) == text
    assert registration(amount=value, cart=(CartItem(goods_name="x", goods_amt=value),)).amount == (
        text
    )


@pytest.mark.parametrize(
    "value",
    ["10000.00", "10,000", "10 000", "-1", "", "1" * 13, "١٢٣", -5, True, 10000.0, None],
)
def test_inexact_amounts_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match=r"amount|digits|string"):
        amount_string(value)
    with pytest.raises(ValidationError):
        CartItem(goods_name="x", goods_amt=value)


def test_the_largest_amount_has_twelve_digits() -> None:
    assert amount_string(999_999_999_999) == "999999999999"
    with pytest.raises(ValueError, match="digits"):
        amount_string(1_000_000_000_000)


# --- cartData ---------------------------------------------------------------------------------


def test_cart_data_is_compact_with_string_values_and_documented_keys_first() -> None:
    items = (
        CartItem(goods_name="Tea", goods_amt="5000", goods_quantity=2, goods_id="SKU-1"),
        CartItem(goods_name="Shipping", goods_amt="2000"),
    )
    text = cart_data(items)
    assert text == (
        '{"count":"2","item":['
        '{"img_url":"","goods_name":"Tea","goods_detail":"","goods_amt":"5000",'
        '"goods_quantity":"2","goods_id":"SKU-1"},'
        '{"img_url":"","goods_name":"Shipping","goods_detail":"","goods_amt":"2000",'
        '"goods_quantity":"1"}]}'
    )


def test_cart_lines_multiply_price_by_quantity() -> None:
    request = registration()  # 2 x 5000 + 1 x 2000
    assert sum(item.line_total for item in request.cart) == 12000
    assert json.loads(request.cart_data)["count"] == "2"


def test_a_cart_that_does_not_add_up_is_refused_with_both_numbers() -> None:
    with pytest.raises(ValidationError) as caught:
        registration(amount="12500")
    message = str(caught.value)
    assert "cartData adds up to 12000" in message
    assert "amt is 12500" in message


def test_an_empty_cart_is_refused() -> None:
    with pytest.raises(ValidationError, match="cart"):
        registration(cart=())


def test_a_zero_quantity_is_refused() -> None:
    with pytest.raises(ValidationError):
        CartItem(goods_name="x", goods_amt="1", goods_quantity="0")


def test_cart_data_over_4000_characters_is_refused() -> None:
    items = tuple(CartItem(goods_name="n" * 100, goods_amt="1") for _ in range(40))
    with pytest.raises(ValidationError, match="4000"):
        registration(amount="40", cart=items)


# --- registration request ---------------------------------------------------------------------


def test_registration_wire_fields_use_nicepay_names_and_strings_only() -> None:
    fields = registration(
        delivery=Delivery(name="Ani", city="Bandung"), vat="0", user_agent="Firefox"
    ).wire_fields()
    assert all(isinstance(value, str) for value in fields.values())
    assert {"billing", "cart", "delivery", "amount", "reference_no"}.isdisjoint(fields)
    assert fields["payMethod"] == "05"
    assert fields["currency"] == "IDR"
    assert fields["billingCountry"] == "Indonesia"
    assert fields["deliveryNm"] == "Ani"
    assert fields["deliveryCity"] == "Bandung"
    assert "deliveryPhone" not in fields
    assert fields["vat"] == "0"
    assert fields["userAgent"] == "Firefox"
    assert "fee" not in fields
    assert fields["cartData"] == registration().cart_data
    assert {"timeStamp", "iMid", "merchantToken"}.isdisjoint(fields)


def test_billing_name_is_not_capped_at_thirty() -> None:
    long_name = "N" * 100
    request = registration(billing={**billing().model_dump(), "name": long_name})
    assert request.wire_fields()["billingNm"] == long_name


@pytest.mark.parametrize(
    "overrides",
    [
        {"reference_no": "R" * 41},
        {"mitra_cd": "ASTR"},
        {"mitra_cd": "ASPY"},
        {"currency": "USD"},
        {"user_ip": ""},
        {"unknown_field": "x"},
        {"pay_valid_dt": "20250101"},
        {"billing": {**billing().model_dump(), "phone": "+62812"}},
        {"vat": "1.5"},
    ],
)
def test_invalid_registrations_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        registration(**overrides)


def test_requests_are_frozen() -> None:
    request = registration()
    with pytest.raises(ValidationError):
        request.amount = "1"  # type: ignore[misc]


def test_with_reference_no_revalidates_and_keeps_the_rest() -> None:
    request = registration()
    renamed = request.with_reference_no("ORD-1-2")
    assert renamed.reference_no == "ORD-1-2"
    assert renamed.cart_data == request.cart_data
    assert renamed.wire_fields() == {**request.wire_fields(), "referenceNo": "ORD-1-2"}
    with pytest.raises(ValidationError):
        request.with_reference_no("R" * 41)


# --- AstraPay forms ---------------------------------------------------------------------------


def _link(**extra: str) -> LinkEnableRequest:
    return LinkEnableRequest(
        reference_no="LINK-1",
        billing_name="Budi",
        billing_phone="08123456789",
        billing_email="budi@example.id",
        db_process_url="https://m.example/notify",
        user_ip="127.0.0.1",
        extra_fields=extra,
    )


def test_extra_form_fields_are_appended() -> None:
    fields = _link(futureField="1").wire_fields()
    assert list(fields)[-1] == "futureField"
    assert fields["mitraCd"] == "ASTR"


@pytest.mark.parametrize("name", ["referenceNo", "billingPhone", "merchantToken", "timeStamp"])
def test_extra_fields_cannot_replace_documented_ones(name: str) -> None:
    with pytest.raises(ValidationError, match="may not replace"):
        _link(**{name: "x"})


# --- browser steps ----------------------------------------------------------------------------


def test_payment_step_get_url_round_trips_every_field() -> None:
    fields = {"tXid": "T", "callBackUrl": "https://m.example/cb?a=1&b=x y#frag"}
    step = PaymentStep.build(
        "https://n.example/nicepay/direct/v2/payment", fields, returns_json=False
    )
    query = urlsplit(step.get_url).query
    assert dict(parse_qsl(query)) == fields
    assert "#" not in step.get_url
    assert step.method == "POST"


def test_auto_submit_html_escapes_every_value() -> None:
    form = BrowserForm(url="https://n.example/x?a=1&b=2", fields={"k": '"><script>x</script>'})
    page = form.auto_submit_html()
    assert "<script>x" not in page
    assert "&quot;&gt;&lt;script&gt;" in page
    assert 'action="https://n.example/x?a=1&amp;b=2"' in page


# --- responses --------------------------------------------------------------------------------


def test_responses_ignore_unknown_keys_and_turn_numbers_into_strings() -> None:
    response = InquiryResponse.model_validate(
        {
            "resultCd": "0000",
            "resultMsg": "paid",
            "tXid": "T",
            "status": 0,
            "amt": 12000,
            "cancelAmt": None,
            "cardNo": None,
            "vacctNo": None,
            "somethingNew": {"nested": True},
        }
    )
    assert (response.status, response.amount, response.cancel_amount) == ("0", "12000", None)
    assert response.result_msg == "paid"


def test_a_registration_success_needs_a_txid() -> None:
    with pytest.raises(ValidationError):
        RegistrationResponse.model_validate({"resultCd": "0000"})
    minimal = RegistrationResponse.model_validate({"resultCd": "0000", "tXid": "T"})
    assert minimal.reference_no is None


def test_shopeepay_json_prefers_the_app_link() -> None:
    both = ShopeePayRedirect.model_validate(
        {"redirectUrlApp": "shopeeid://pay", "redirectUrlHttp": "https://shopee", "x": 1}
    )
    web = ShopeePayRedirect.model_validate({"redirectUrlHttp": "https://shopee"})
    assert both.redirect_url == "shopeeid://pay"
    assert web.redirect_url == "https://shopee"
    assert ShopeePayRedirect.model_validate({}).redirect_url is None


# --- configuration ----------------------------------------------------------------------------


def test_environments_are_the_four_documented_hosts() -> None:
    assert {env.value for env in Environment} == {
        "https://dev.nicepay.co.id/nicepay",
        "https://www.nicepay.co.id/nicepay",
        "https://dev-services.nicepay.co.id/nicepay",
        "https://services.nicepay.co.id/nicepay",
    }


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (Environment.PRODUCTION, "https://www.nicepay.co.id/nicepay"),
        ("http://127.0.0.1:8080/nicepay/", "http://127.0.0.1:8080/nicepay"),
    ],
)
def test_base_urls_are_normalised(base: str, expected: str) -> None:
    credentials = NicepayCredentials(imid="IONPAYTEST", merchant_key="k", base_url=base)
    assert credentials.base_url == expected
    assert credentials.url("/direct/v2/inquiry") == f"{expected}/direct/v2/inquiry"


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "https://www.nicepay.co.id"},
        {"base_url": "ftp://x/nicepay"},
        {"merchant_key": ""},
        {"imid": "TOO-LONG-MERCHANT-ID"},
        {"imid": ""},
    ],
)
def test_bad_credentials_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NicepayCredentials(**{"imid": "IONPAYTEST", "merchant_key": "k", **overrides})


def test_the_key_is_hidden_but_usable() -> None:
    credentials = NicepayCredentials(imid="IONPAYTEST", merchant_key="very-secret")
    assert isinstance(credentials.merchant_key, SecretStr)
    assert credentials.merchant_key.get_secret_value() == "very-secret"
    assert "very-secret" not in repr(credentials) + credentials.model_dump_json()


def test_simulator_base_url() -> None:
    assert simulator_base_url(8123) == "http://127.0.0.1:8123/nicepay"
    assert simulator_base_url(8123, "::1") == "http://[::1]:8123/nicepay"
    assert simulator_base_url(80, "localhost") == "http://localhost:80/nicepay"
    with pytest.raises(ValueError, match="port"):
        simulator_base_url(0)
