"""Wallet adapters: the protocol, the registry, each wallet, status codes and cancel rules."""
