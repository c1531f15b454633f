"""Which flows the command runs: the built-in ones, or a service's own catalog.

``--flows MODULE:NAME`` (before the command) names a :class:`~fsm.definition.FlowCatalog`, or a
mapping of flows, that a service defines, so ``check``, ``replay``, ``migrate`` and the rest
see the versions the service runs. The module is imported as the service would import it, with
the working directory on the import path.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from fsm.definition import FlowCatalog
from fsm.errors import ConfigurationError
from fsm.flows import FLOWS

FLOWS_ENV = "EWALLET_FSM_FLOWS"
_chosen: list[FlowCatalog] = [FLOWS]


def catalog() -> FlowCatalog:
    """The flows this run of the command uses."""
    return _chosen[-1]


def choose(arguments: Sequence[str]) -> None:
    """Load the catalog ``--flows`` (or ``$EWALLET_FSM_FLOWS``) names, before parsing the rest.

    Raises:
        ConfigurationError: the module or the name in it cannot be loaded, or is not flows.
    """
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--flows", default=os.environ.get(FLOWS_ENV))
    spec = early.parse_known_args(list(arguments))[0].flows
    _chosen[1:] = [] if spec is None else [load(spec)]


def load(spec: str) -> FlowCatalog:
    """The catalog at ``MODULE:NAME``.

    Raises:
        ConfigurationError: it cannot be loaded, or is not a mapping of flows.
    """
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigurationError(f"--flows {spec!r}: give MODULE:NAME, e.g. myshop.flows:FLOWS")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"--flows {spec!r}: {exc}") from None
    if not isinstance(found, Mapping):
        raise ConfigurationError(f"--flows {spec!r} is not a FlowCatalog or a mapping of flows")
    return FlowCatalog.of(found)


__all__ = ["FLOWS_ENV", "catalog", "choose", "load"]
