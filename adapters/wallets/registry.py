"""Wallet adapters by wallet: one entry per wallet, and errors that list the choices."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from adapters.errors import UnknownAdapter
from adapters.wallets.astrapay import AstrapayAdapter
from adapters.wallets.base import WalletAdapter
from adapters.wallets.ewallet import DanaAdapter, LinkAjaAdapter, OvoAdapter, ShopeePayAdapter

ADAPTERS: Mapping[str, WalletAdapter] = MappingProxyType(
    {
        adapter.wallet: adapter
        for adapter in (
            OvoAdapter(),
            DanaAdapter(),
            LinkAjaAdapter(),
            ShopeePayAdapter(),
            AstrapayAdapter(),
        )
    }
)


def adapter_for(wallet: str) -> WalletAdapter:
    """The adapter of ``wallet``.

    Raises:
        UnknownAdapter: no adapter serves that wallet; the error lists the registered ones.
    """
    try:
        return ADAPTERS[wallet]
    except KeyError:
        raise UnknownAdapter(wallet, sorted(ADAPTERS)) from None


def names() -> list[str]:
    """The wallets with a registered adapter, sorted."""
    return sorted(ADAPTERS)
