"""Signals the store raises inside the library, each turned into an answer or a public error.

A unit of work raises the first three to the engine; the store's own methods catch the last.
They are control flow, never seen by a caller, so they derive from ``Exception`` alone: an
``except FsmError`` (or any public class) never catches one.
"""

from __future__ import annotations


class Contention(Exception):
    """Lock contention the database gave up on; the engine raises ConcurrentTransition for it."""


class KeyTaken(Exception):
    """The log already holds this idempotency key for the instance (the unique key refused it).

    Either an earlier event used the key, or a racing writer logged it first. The unit rolls
    back whole; the engine then answers from the logged record, as a duplicate or a reused key.
    """


class ReferenceTaken(Exception):
    """A bound reference belongs to another live instance of the flow: the unique index refused it.

    The unit rolls back whole; the engine answers :class:`~fsm.errors.ReferenceInUse`.
    """


class Refused(Exception):
    """A unique or foreign key refused a store method's write; the transaction rolled back whole.

    Never leaves the store: the method that wrote says what it means (``InstanceExists``,
    ``ReferenceInUse``, ``CallKeyTaken``, ...).
    """
