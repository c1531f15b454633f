"""The engine speaks no provider's language: no NICEPAY name in ``fsm`` outside its flows.

The merchant-side flows (``fsm/flows/``) describe NICEPAY's e-wallets and may name it; the
migration scripts keep the names the log was once written with, so they can rename them. Every
other module of ``fsm``, its code, comments and docstrings alike, uses neutral words: a provider,
a transaction id, a reference.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FSM_DIR = ROOT / "fsm"
EXEMPT = (FSM_DIR / "flows", FSM_DIR / "store" / "migrations" / "versions")

NICEPAY_WORDS = re.compile(
    r"nicepay|txid|(?<![a-z])imid(?![a-z])|mitracd|referenceno|resultcd|resultmsg"
    r"|dbprocessurl|callbackurl|paymethod",
    re.IGNORECASE,
)
"""NICEPAY's name and its wire words (``tXid``, ``iMid``, ``mitraCd``, ``referenceNo``, ...)."""


def nicepay_words(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{number}: {match.group()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in NICEPAY_WORDS.finditer(line)
    ]


def test_the_pattern_finds_the_vocabulary_and_spares_neutral_words() -> None:
    spoken = "NICEPAY tXid iMid(10) mitraCd referenceNo resultCd dbProcessUrl callBackUrl"
    assert len(NICEPAY_WORDS.findall(spoken)) == 8
    neutral = "provider_response tx_id reference_no timid merchant_key timer"
    assert NICEPAY_WORDS.findall(neutral) == []


def test_fsm_names_no_nicepay_word_outside_its_flows() -> None:
    paths = [
        path
        for path in sorted(FSM_DIR.rglob("*.py"))
        if not any(path.is_relative_to(exempt) for exempt in EXEMPT)
    ]
    assert len(paths) >= 30, "the scan found too few modules to mean anything"
    assert [hit for path in paths for hit in nicepay_words(path)] == []
