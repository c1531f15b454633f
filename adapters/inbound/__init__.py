"""Inbound endpoints: parsing, matching and verification, the handler, its journal, the ASGI app."""
