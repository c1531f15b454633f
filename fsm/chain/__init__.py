"""The audit chain: every log row linked to the one before it, every instance row sealed.

See :mod:`fsm.chain.content` for what is covered, :mod:`fsm.chain.keys` for the keys and
:mod:`fsm.chain.verify` for the verdicts. A chain proves its own rows, not that its instance
still exists or that its rows are the newest: :mod:`fsm.chain.checkpoint` signs every chain's
head into a checkpoint kept outside the database, which shows a deleted or rolled-back instance
(``ewallet-fsm checkpoint``, ``verify --against``). :func:`fsm.store.reseal.reseal` seals
hash-only chains under the audit key once they are found intact. The engine's metrics and spans
are :mod:`fsm.telemetry`'s, not the chain's.
"""

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS, canonical
from fsm.chain.keys import ENV_VAR, HASH_ONLY, AuditKeys
from fsm.chain.link import Chain
from fsm.chain.verify import ChainStatus, ChainVerdict, verify_chain, verify_chains

__all__ = [
    "ENV_VAR",
    "HASH_ONLY",
    "LINK_FIELDS",
    "SEAL_FIELDS",
    "AuditKeys",
    "Chain",
    "ChainStatus",
    "ChainVerdict",
    "canonical",
    "verify_chain",
    "verify_chains",
]
