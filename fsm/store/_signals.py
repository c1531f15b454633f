"""What a store tells the engine inside one unit of work; never seen outside the library.

These are control flow, not errors a caller handles: each derives from nothing public, and the
engine (or the store method that raised it) turns it into the public error it means.
"""

from __future__ import annotations


class Contention(Exception):
    """Lock contention the database gave up on; the engine answers ``ConcurrentTransition``."""


class Refused(Exception):
    """A unique or foreign key refused the write; the unit or transaction rolled back whole."""


class KeyTaken(Refused):
    """The log already holds this idempotency key for the instance.

    Either an earlier event used the key, or a racing writer logged it first. The engine then
    answers from the logged record, as a duplicate or a reused key.
    """


class ReferenceTaken(Refused):
    """A bound reference belongs to another live instance of the flow (the unique index refused it).

    The engine answers ``ReferenceInUse``.
    """


__all__ = ["Contention", "KeyTaken", "ReferenceTaken", "Refused"]
