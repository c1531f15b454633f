"""An instance's audit report: one self-contained HTML file an auditor can open anywhere.

It holds the path diagram as inline SVG, every applied transition (time in UTC and in Asia/Jakarta,
event, states, actor, idempotency key, payload fields), every refused event with its reason, the
refunded total and each refund request (who asked for how much, and why), the replay
verdict, and the audit chain's verdict with the key ids that protect the rows: a report made from
an edited database says so at its top. Every piece of text is HTML-escaped, secret-looking
payload fields are shown as ``[redacted]``, and the page loads nothing and runs no script (its
Content-Security-Policy forbids both). The builder is generic: it reads only the flow, the
instance and its log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fsm._payload import REDACTED, UnreadablePayload, is_secret_field
from fsm.chain.verify import ChainStatus, ChainVerdict
from fsm.definition import FlowDefinition, FlowVersions
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.refunds import refund_requests, refunded_total
from fsm.render.diagram import path_to_dot, render
from fsm.replay import ReplayResult

_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_BREAK_AFTER = re.compile(r"([_:|=,])")
_ZONES = ("time (UTC)", "time (Asia/Jakarta)")
_TRANSITION_HEAD = (
    "step",
    *_ZONES,
    "version",
    "event",
    "from",
    "to",
    "actor",
    "idempotency key",
    "definition",
    "payload",
)
_REFUSAL_HEAD = (
    *("after step", *_ZONES, "event", "in state", "actor"),
    *("reason", "detail", "idempotency key", "payload"),
)
_REFUND_HEAD = ("step", *_ZONES, "request id", "amount", "requested by", "actor", "reason")


def jakarta() -> tzinfo:
    """Asia/Jakarta (WIB, UTC+7 without daylight saving), even where no tz database exists."""
    try:
        return ZoneInfo("Asia/Jakarta")
    except ZoneInfoNotFoundError:
        return timezone(timedelta(hours=7), "WIB")


def audit_report(
    flow: FlowDefinition | FlowVersions,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent],
    result: ReplayResult,
    *,
    generated_at: datetime | None = None,
) -> str:
    """Render the path diagram with Graphviz and build the report around it.

    Args:
        flow: the instance's flow: every released version, or the one definition it runs on.
        instance: the stored instance.
        history: its applied transitions in log order.
        rejections: its refused events in arrival order.
        result: the replay of ``history`` (:func:`fsm.replay.replay_instance`).
        generated_at: when the report was made, shown in its footer; omitted when ``None``.

    Returns:
        The whole HTML document.

    Raises:
        DiagramBackendUnavailable: Graphviz is missing.
    """
    svg = render(path_to_dot(flow, instance, history, rejections), "svg").decode("utf-8")
    return audit_html(
        flow, instance, history, rejections, result, svg=svg, generated_at=generated_at
    )


def audit_html(
    flow: FlowDefinition | FlowVersions,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent],
    result: ReplayResult,
    *,
    svg: str,
    generated_at: datetime | None = None,
) -> str:
    """The report as one HTML document around an already rendered SVG diagram.

    Args:
        flow: the instance's flow: every released version, or the one definition it runs on.
        instance: the stored instance.
        history: its applied transitions in log order, each shown with the version it ran under.
        rejections: its refused events in arrival order.
        result: the replay of ``history``.
        svg: the path diagram as SVG text (Graphviz output).
        generated_at: when the report was made, shown in its footer; omitted when ``None``.

    Returns:
        The whole HTML document.
    """
    title = f"Audit of {instance.id}"
    lineage = FlowVersions.of(flow)
    pinned = lineage.versions.get(instance.flow_version, lineage.latest)
    sections = [
        f"<h1>{escape(title)}</h1>",
        _warning(result.chain),
        _summary(pinned, instance, history, rejections),
        _verdict(result, instance),
        _chain(result.chain),
        _diagram(svg),
        _transitions(history),
        _refusals(rejections),
        _refund_requests(history),
        _footer(generated_at),
    ]
    return _page(title, sections)


def _page(title: str, sections: Iterable[str]) -> str:
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
    )
    return head + "\n".join(sections) + "\n</body>\n</html>\n"


def _summary(
    flow: FlowDefinition,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent],
) -> str:
    amount = f"{instance.amount} {instance.currency}" if instance.amount else None
    rows = [
        ("flow", f"{flow.name} v{instance.flow_version}"),
        ("definition", flow.fingerprint),
        ("wallet", instance.wallet),
        ("amount", amount),
        ("reference_no", instance.reference_no),
        ("tx_id", instance.tx_id),
        ("state", instance.state),
        ("refunded", refunded_total(instance) if instance.amount else None),
        ("version", str(instance.version)),
        ("created", _both_zones(instance.created_at)),
        ("updated", _both_zones(instance.updated_at)),
        ("transitions", str(len(history))),
        ("refused events", str(len(rejections))),
    ]
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{_text(v)}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Instance</h2><table class="facts">{cells}</table></section>'


def _verdict(result: ReplayResult, instance: Instance) -> str:
    verdict = str(result.verdict)
    lines = [
        f"Replaying the log through <code>{escape(result.flow)}</code> gives state "
        f"<code>{escape(result.state)}</code> after {result.applied} steps"
        f"{_under(result.versions)}; the stored row says "
        f"<code>{escape(instance.state)}</code> at version {instance.version}."
    ]
    if result.divergence is not None:
        where = (
            "the stored row" if result.divergence.seq is None else f"step {result.divergence.seq}"
        )
        lines.append(f"First divergence at {where}: {escape(result.divergence.reason)}")
    lines += [f"Damaged row at {escape(note)}" for note in result.damaged]
    body = "".join(f"<p>{line}</p>" for line in lines)
    return (
        f'<section id="replay" data-verdict="{escape(verdict)}"><h2>Replay verdict</h2>'
        f'<p class="verdict {escape(verdict)}">{escape(verdict)}</p>{body}</section>'
    )


def _under(versions: Sequence[int]) -> str:
    """`` under v1`` or `` under v1, then v2``: the versions the steps were checked against."""
    if not versions:
        return ""
    return " under " + ", then ".join(f"v{v}" for v in versions)


def _warning(chain: ChainVerdict | None) -> str:
    """The alarm at the top of a report made from rows that are not the ones written."""
    if chain is None or chain.status is not ChainStatus.TAMPERED:
        return ""
    return (
        '<section id="tampered" class="alarm"><p><strong>This database was edited after the '
        f"payment was recorded.</strong> The audit chain breaks at {escape(chain.where)}: "
        f"{escape(chain.reason or '')}. Nothing below can be taken as what happened.</p></section>"
    )


def _chain(chain: ChainVerdict | None) -> str:
    if chain is None:
        status, text = "unchecked", "The audit chain was not read for this report."
    else:
        status, text = str(chain.status), chain.describe()
    keys = "" if chain is None else ", ".join(chain.key_ids) or "-"
    return (
        f'<section id="chain" data-chain="{escape(status)}"><h2>Audit chain</h2>'
        f'<p class="verdict {escape(status)}">{escape(status)}</p><p>{escape(text)}</p>'
        f'<table class="facts"><tr><th>key ids</th><td>{escape(keys)}</td></tr></table></section>'
    )


def _diagram(svg: str) -> str:
    return (
        '<section id="diagram"><h2>Path</h2><figure>'
        f"{inline_svg(svg)}<figcaption>Arrows taken are numbered by step and coloured by actor; "
        "notes show refused events at the state they arrived in; the current state is outlined "
        "in blue.</figcaption></figure></section>"
    )


def inline_svg(svg: str) -> str:
    """Graphviz SVG made fit to sit inside HTML: no XML prologue, doctype or comments."""
    return _SVG_COMMENT.sub("", _SVG_PROLOGUE.sub("", svg, count=1)).strip()


_Row = tuple[int, datetime, Sequence[str], Mapping[str, Any] | None]
"""A log row: its step number, its time, its text cells and its payload (``None``: no cell)."""


def _transitions(history: Sequence[TransitionRecord]) -> str:
    rows: list[_Row] = [
        (
            r.seq,
            r.occurred_at,
            (
                f"v{r.flow_version}",
                r.event,
                r.source,
                r.dest,
                str(r.actor),
                r.idempotency_key,
                r.fingerprint,
            ),
            r.payload,
        )
        for r in history
    ]
    return _table("transitions", "Transitions", _TRANSITION_HEAD, rows)


def _refusals(rejections: Sequence[RejectedEvent]) -> str:
    rows: list[_Row] = [
        (
            r.version,
            r.occurred_at,
            (r.event, r.state, str(r.actor), str(r.reason), r.detail, r.idempotency_key),
            r.payload,
        )
        for r in rejections
    ]
    return _table("refused", "Refused events", _REFUSAL_HEAD, rows)


def _refund_requests(history: Sequence[TransitionRecord]) -> str:
    rows: list[_Row] = [
        (
            r.seq,
            r.occurred_at,
            (r.request_id, r.amount, r.requested_by, str(r.actor), r.reason),
            None,
        )
        for r in refund_requests(history)
    ]
    return _table("refunds", "Refund requests", _REFUND_HEAD, rows)


def _table(table_id: str, title: str, head: Sequence[str], rows: Sequence[_Row]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(_row(row) for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="none">none</td></tr>'
    return (
        f'<section><h2>{escape(title)}</h2><table id="{table_id}" class="log">'
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _row(row: _Row) -> str:
    number, moment, texts, payload = row
    times = f'<td class="t">{escape(_utc(moment))}</td><td class="t">{escape(_wib(moment))}</td>'
    cells = "".join(f"<td>{_breakable(text)}</td>" for text in texts)
    extra = "" if payload is None else _payload_cell(payload)
    return f"<tr><td>{number}</td>{times}{cells}{extra}</tr>"


def _payload_cell(payload: Mapping[str, Any]) -> str:
    if isinstance(payload, UnreadablePayload):
        return f'<td class="damaged">stored payload unreadable: {escape(payload.problem)}</td>'
    fields = sorted(payload.items(), key=lambda item: str(item[0]))
    items = "".join(
        f"<li><code>{_breakable(str(k))}</code> = <code>{_breakable(_value(k, v))}</code></li>"
        for k, v in fields
    )
    return f'<td><ul class="payload">{items}</ul></td>' if items else "<td></td>"


def _value(key: object, value: Any) -> str:
    if isinstance(key, str) and is_secret_field(key):
        return REDACTED
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _footer(generated_at: datetime | None) -> str:
    when = f" on {escape(_utc(generated_at))}" if generated_at else ""
    return f"<footer>Generated by ewallet-fsm{when}.</footer>"


def _breakable(text: str) -> str:
    """Escaped text that may wrap after ``_ : | = ,`` instead of inside a word."""
    return _BREAK_AFTER.sub(r"\1<wbr>", escape(text))


def _text(value: str | None) -> str:
    return '<span class="none">-</span>' if value is None else escape(value)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wib(moment: datetime) -> str:
    return moment.astimezone(jakarta()).isoformat(timespec="milliseconds")


def _both_zones(moment: datetime) -> str:
    return f"{_utc(moment)}  ({_wib(moment)} Asia/Jakarta)"


_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2rem; color: #0f172a; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; word-break: break-all; }
h2 { font-size: 1.15rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid #e2e8f0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #cbd5e1; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f1f5f9; }
table.log { width: 100%; font-size: 12.5px; }
table.log tbody tr:nth-child(even) { background: #f8fafc; }
td { overflow-wrap: break-word; }
td.t { white-space: nowrap; }
code { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
ul.payload { margin: 0; padding-left: 1rem; }
ul.payload code { overflow-wrap: anywhere; }
.none { color: #94a3b8; }
.verdict { display: inline-block; font-weight: 700; font-size: 1.1rem; padding: 0.2rem 0.7rem;
           border-radius: 0.3rem; text-transform: uppercase; }
.verdict.consistent { background: #dcfce7; color: #15803d; }
.verdict.diverged, .verdict.tampered { background: #fee2e2; color: #b91c1c; }
.verdict.intact { background: #dcfce7; color: #15803d; }
.verdict.unverified, .verdict.unchecked { background: #fef3c7; color: #b45309; }
.alarm { border: 3px solid #b91c1c; background: #fee2e2; color: #7f1d1d; padding: 0.2rem 1rem; }
.verdict.damaged, td.damaged { background: #fef3c7; color: #b45309; }
figure { margin: 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #475569; font-size: 12.5px; margin-top: 0.4rem; }
footer { margin-top: 2rem; color: #64748b; font-size: 12px; }
"""
