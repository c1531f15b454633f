"""Storage: the store protocols, the in-memory and SQL stores, tables, migrations and leases."""

from fsm.store.leases import Leases
from fsm.store.memory import MemoryStore
from fsm.store.protocol import Store, Unit
from fsm.store.sql import SqlStore

__all__ = ["Leases", "MemoryStore", "SqlStore", "Store", "Unit"]
