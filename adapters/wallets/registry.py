"""Wallet adapters by wallet, and the adapter of any stored instance; errors list the choices.

A payment starts through its wallet's adapter (:func:`adapter_for`). Whatever later concerns a
stored payment or link (a notification, a browser return, an inquiry's answer) is answered by the
adapter of its flow and wallet (:func:`adapter_of`), so no caller branches on a flow's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from adapters.errors import UnknownAdapter
from adapters.wallets.astrapay import AstrapayAdapter, AstrapayLinkAdapter
from adapters.wallets.base import FlowAdapter, WalletAdapter
from adapters.wallets.ewallet import DanaAdapter, LinkAjaAdapter, OvoAdapter, ShopeePayAdapter
from fsm.model import Instance

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
"""The payment adapter of every wallet."""

ACCOUNT_LINK = AstrapayLinkAdapter()
"""The adapter of AstraPay's account links, which payments with a mandate need first."""

_EVERY: tuple[FlowAdapter, ...] = (*ADAPTERS.values(), ACCOUNT_LINK)
_BY_FLOW: Mapping[tuple[str, str], FlowAdapter] = MappingProxyType(
    {(adapter.flow, adapter.wallet): adapter for adapter in _EVERY}
)


def adapter_for(wallet: str) -> WalletAdapter:
    """The adapter that starts payments of ``wallet``.

    Raises:
        UnknownAdapter: no adapter serves that wallet; the error lists the registered ones.
    """
    try:
        return ADAPTERS[wallet]
    except KeyError:
        raise UnknownAdapter(wallet, sorted(ADAPTERS)) from None


def adapter_of(instance: Instance) -> FlowAdapter:
    """The adapter that answers for ``instance``, by its flow and wallet.

    Raises:
        UnknownAdapter: no adapter serves that flow and wallet (an instance of another
            application's flow, or a damaged row); the error lists the registered pairs.
    """
    try:
        return _BY_FLOW[instance.flow, instance.wallet or ""]
    except KeyError:
        known = sorted(f"{flow}/{wallet}" for flow, wallet in _BY_FLOW)
        raise UnknownAdapter(f"{instance.flow}/{instance.wallet}", known) from None


def names() -> list[str]:
    """The wallets with a registered adapter, sorted."""
    return sorted(ADAPTERS)


__all__ = ["ACCOUNT_LINK", "ADAPTERS", "adapter_for", "adapter_of", "names"]
