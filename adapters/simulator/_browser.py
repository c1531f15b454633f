"""A scripted customer's browser: follows NICEPAY's redirects, acts on the wallet's pages, returns.

It understands the simulator's pages (marked by a response header and ``data-sim-page``) and
stops at the first page that is not the simulator's, which is the merchant's ``callBackUrl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from adapters.simulator._asgi import SIMULATOR_HEADER
from adapters.simulator._config import CustomerAction


class BrowserOutcome(StrEnum):
    """Where the browser's journey ended."""

    RETURNED = "returned"
    """Back at the merchant (``callBackUrl``); ``params`` holds what NICEPAY sent along."""
    ABANDONED = "abandoned"
    """The customer walked away on the wallet's page."""
    CLOSED = "closed"
    """A final page that does not lead back to the merchant."""
    ERROR = "error"
    """NICEPAY refused the request (``result_cd``) or answered with an HTTP error."""
    GAVE_UP = "gave_up"
    """The page kept waiting longer than ``max_wait``."""


@dataclass(frozen=True)
class BrowserResult:
    """What the browser saw at the end."""

    outcome: BrowserOutcome
    final_url: str
    status_code: int
    visited: tuple[str, ...]
    """Every request made, as ``"METHOD url"``."""
    result_cd: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    """The parameters the merchant received (query string, or the posted form)."""
    body: str = ""


@dataclass
class _Form:
    action: str
    attrs: dict[str, str]
    inputs: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.role = ""
        self.body: dict[str, str] = {}
        self.refresh: str | None = None
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body, self.role = found, found.get("data-sim-page", "")
        elif tag == "meta" and found.get("http-equiv", "").lower() == "refresh":
            self.refresh = found.get("content", "").partition("url=")[2] or None
        elif tag == "form":
            self.forms.append(_Form(found.get("action", ""), found))
        elif tag == "input" and self.forms and found.get("name"):
            self.forms[-1].inputs[found["name"]] = found.get("value", "")
        elif tag == "button" and self.forms and found.get("name") == "action":
            self.forms[-1].buttons.append(found.get("value", ""))


@dataclass(frozen=True)
class _Go:
    method: str
    url: str
    fields: Mapping[str, str] | None = None


class ScriptedBrowser:
    """Plays the customer's browser through a payment or an AstraPay link, over ``http``."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        action: CustomerAction | str | None = None,
        prefer: Literal["http", "app"] = "http",
        poll_interval: float = 0.1,
        max_wait: float = 120.0,
        max_steps: int = 100,
    ) -> None:
        """Drive ``http`` (redirects are followed here, one by one).

        Args:
            http: the client to browse with; its own redirect setting is overridden.
            action: what to do on the wallet's page; by default the customer's script there
                (``sim.script_customer``), else ``pay``.
            prefer: which ShopeePay link to open from a JSON answer.
            poll_interval: seconds between reloads of a waiting page (OVO).
            max_wait: give up on a waiting page after this many seconds.
            max_steps: give up after this many requests.
        """
        self._http = http
        self._action = None if action is None else CustomerAction.parse(action)
        self._prefer = prefer
        self._poll = poll_interval
        self._max_wait = max_wait
        self._max_steps = max_steps

    def open(self, url: str) -> BrowserResult:
        """Open a payment (or link) URL with GET and follow it to the end."""
        return self._run(_Go("GET", url))

    def submit(self, url: str, fields: Mapping[str, str]) -> BrowserResult:
        """POST a form (the payment form, ``linkEnable.do``, ``linkInitiate.do``) and follow it."""
        return self._run(_Go("POST", url, fields))

    def _run(self, go: _Go) -> BrowserResult:
        visited: list[str] = []
        deadline = time.monotonic() + self._max_wait
        response: httpx.Response | None = None
        for _ in range(self._max_steps):
            response = self._http.request(go.method, go.url, data=go.fields, follow_redirects=False)
            visited.append(f"{go.method} {go.url}")
            step = self._step(go, response, tuple(visited), deadline)
            if isinstance(step, BrowserResult):
                return step
            go = step
        if response is None:
            raise ValueError("max_steps must be at least 1")
        return _result(BrowserOutcome.GAVE_UP, go.url, response, tuple(visited))

    def _step(
        self, go: _Go, response: httpx.Response, visited: tuple[str, ...], deadline: float
    ) -> _Go | BrowserResult:
        if SIMULATOR_HEADER not in response.headers:  # the merchant's page: the journey ends
            params = go.fields or dict(parse_qsl(urlsplit(go.url).query, keep_blank_values=True))
            return _result(BrowserOutcome.RETURNED, go.url, response, visited, params)
        if response.is_redirect:
            return _Go("GET", urljoin(go.url, response.headers["location"]))
        if response.status_code >= 400:
            return _result(BrowserOutcome.ERROR, go.url, response, visited)
        if "json" in response.headers.get("content-type", ""):
            return self._json_step(go, response, visited)
        return self._html_step(go, response, visited, deadline)

    def _json_step(
        self, go: _Go, response: httpx.Response, visited: tuple[str, ...]
    ) -> _Go | BrowserResult:
        data = json.loads(response.text)
        first, second = ("redirectUrlHttp", "redirectUrlApp")
        if self._prefer == "app":
            first, second = second, first
        link = data.get(first) or data.get(second)
        if link:
            return _Go("GET", urljoin(go.url, link))
        code = data.get("resultCd")
        return _result(BrowserOutcome.ERROR, go.url, response, visited, result_cd=code)

    def _html_step(
        self, go: _Go, response: httpx.Response, visited: tuple[str, ...], deadline: float
    ) -> _Go | BrowserResult:
        page = _PageParser()
        page.feed(response.text)
        if page.role == "waiting" and page.refresh:
            if time.monotonic() > deadline:
                return _result(BrowserOutcome.GAVE_UP, go.url, response, visited)
            time.sleep(self._poll)
            return _Go("GET", urljoin(go.url, page.refresh))
        if page.role == "redirect" and page.forms:
            form = page.forms[0]
            return _Go("POST", urljoin(go.url, form.action), form.inputs)
        if page.role == "partner" and page.forms:
            return self._act(go, response, visited, page.forms[0])
        if page.role == "error":
            code = page.body.get("data-result-cd")
            return _result(BrowserOutcome.ERROR, go.url, response, visited, result_cd=code)
        return _result(BrowserOutcome.CLOSED, go.url, response, visited)

    def _act(
        self, go: _Go, response: httpx.Response, visited: tuple[str, ...], form: _Form
    ) -> _Go | BrowserResult:
        scripted = form.attrs.get("data-scripted-action")
        action = self._action or CustomerAction.parse(scripted or CustomerAction.PAY)
        if action is CustomerAction.ABANDON:
            return _result(BrowserOutcome.ABANDONED, go.url, response, visited)
        delay = float(form.attrs.get("data-delay", "0") or 0)
        if delay > 0:
            time.sleep(delay)
        pressed = action.value if action.value in form.buttons else form.buttons[0]
        return _Go("POST", urljoin(go.url, form.action), {**form.inputs, "action": pressed})


def _result(
    outcome: BrowserOutcome,
    url: str,
    response: httpx.Response,
    visited: tuple[str, ...],
    params: Mapping[str, str] | None = None,
    result_cd: str | None = None,
) -> BrowserResult:
    params = dict(params or {})
    return BrowserResult(
        outcome=outcome,
        final_url=url,
        status_code=response.status_code,
        visited=visited,
        result_cd=result_cd or params.get("resultCd"),
        params=params,
        body=response.text,
    )
