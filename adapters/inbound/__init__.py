"""Inbound endpoints: parsing and verification, the notification handler, the ASGI app."""
