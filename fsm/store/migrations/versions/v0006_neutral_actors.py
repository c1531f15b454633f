"""Provider-neutral actors: stored actor names renamed, and the flows' fingerprints with them.

The engine's actors no longer name one provider: ``provider_response`` and
``provider_notification`` replace the names the log and the refused events were written with.
Each flow now declares its actors, and since the fingerprint covers what a flow does, the built-in
flows' fingerprints changed with the rename alone: each step logged under a built-in flow's last
fingerprint is rewritten to its new one, so a log that replayed ``consistent`` still does. A step
under any other fingerprint (an older definition, a flow of the application's own) is left as it
was. Downgrading reverses both.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

ACTORS: Mapping[str, str] = {
    "nicepay_response": "provider_response",
    "nicepay_notification": "provider_notification",
}
"""Stored actor names: old to new."""

FINGERPRINTS: Mapping[str, str] = {
    "sha256:1c7f6c76c11df6c4": "sha256:64e0bc78d165406e",  # ewallet_payment
    "sha256:4ef8a127f510bdef": "sha256:a2f86d2bdf2c28b2",  # astrapay_link
    "sha256:0ef819da4e809128": "sha256:7c3d0f8812594c28",  # astrapay_payment
}
"""The built-in flows' fingerprints: as revision 0005's release computed them, to now."""

_LOG = sa.table("transition_log", sa.column("actor"), sa.column("fingerprint"))
_REJECTED = sa.table("rejected_event", sa.column("actor"))


def upgrade() -> None:
    _rename(ACTORS, FINGERPRINTS)


def downgrade() -> None:
    _rename(_reversed(ACTORS), _reversed(FINGERPRINTS))


def _rename(actors: Mapping[str, str], fingerprints: Mapping[str, str]) -> None:
    for old, new in actors.items():
        for table in (_LOG, _REJECTED):
            op.execute(table.update().where(table.c.actor == old).values(actor=new))
    for old, new in fingerprints.items():
        op.execute(_LOG.update().where(_LOG.c.fingerprint == old).values(fingerprint=new))


def _reversed(names: Mapping[str, str]) -> dict[str, str]:
    return {new: old for old, new in names.items()}
