"""The simulator's HTML: NICEPAY's and the wallets' pages, plain enough for a scripted browser.

Every page names its role in ``data-sim-page`` on ``<body>``; forms a customer acts on carry
``data-step`` and, when the customer is scripted, ``data-scripted-action`` and ``data-delay``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape


def _page(title: str, role: str, body: str, head: str = "", attrs: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title>{head}</head>"
        f'<body data-sim-page="{escape(role)}"{attrs}>\n{body}\n</body></html>\n'
    )


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def error_page(code: str, message: str) -> str:
    """NICEPAY refuses a browser request."""
    body = f"<h1>Transaction error</h1><p>resultCd {escape(code)}: {escape(message)}</p>"
    return _page("NICEPAY error", "error", body, attrs=f' data-result-cd="{escape(code)}"')


def waiting_page(refresh_url: str, message: str) -> str:
    """NICEPAY waits for the wallet (OVO push) and reloads itself."""
    head = f'<meta http-equiv="refresh" content="1;url={escape(refresh_url)}">'
    return _page("NICEPAY", "waiting", f"<p>{escape(message)}</p>", head=head)


def closed_page(message: str) -> str:
    """A final page that does not lead back to the merchant."""
    return _page("Done", "closed", f"<p>{escape(message)}</p>")


def autosubmit_page(action: str, fields: Mapping[str, str]) -> str:
    """An auto-submitting POST form (the form variant of a redirect)."""
    body = (
        f'<form method="post" action="{escape(action)}" data-autosubmit="1">'
        f"{_hidden(fields)}<noscript><button type='submit'>Continue</button></noscript></form>"
        "<script>document.forms[0].submit()</script>"
    )
    return _page("Redirecting", "redirect", body)


def partner_page(
    *,
    title: str,
    step: str,
    action: str,
    hidden: Mapping[str, str],
    inputs: Mapping[str, str],
    buttons: Sequence[tuple[str, str]],
    scripted: tuple[str, float] | None,
) -> str:
    """A wallet's page with one form: fields to fill and buttons (``action`` values) to press."""
    script_attrs = ""
    if scripted is not None:
        script_attrs = f' data-scripted-action="{escape(scripted[0])}" data-delay="{scripted[1]}"'
    fields = "".join(
        f'<label>{escape(k)} <input type="text" name="{escape(k)}" value="{escape(v)}"></label>'
        for k, v in inputs.items()
    )
    pressed = "".join(
        f'<button type="submit" name="action" value="{escape(v)}">{escape(label)}</button>'
        for v, label in buttons
    )
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<form method="post" action="{escape(action)}" data-step="{escape(step)}"{script_attrs}>'
        f"{_hidden(hidden)}{fields}{pressed}</form>"
    )
    return _page(title, "partner", body)
