"""Wallet adapters: the protocol, orders, answers given without I/O, each wallet, the registry,
and the status and cancel tables."""
