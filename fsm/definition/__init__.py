"""Flow definitions: the frozen data, the checks it must pass, JSON loading, the compiled table."""

from fsm.definition.catalog import FlowCatalog, FlowVersions
from fsm.definition.flow import FlowDefinition, flow_to_dict
from fsm.definition.loading import dump_flow, flow_from_dict, load_flow_file
from fsm.definition.migration import FlowMigration
from fsm.definition.spec import (
    AMOUNT_FIELDS,
    BINDABLE_FIELDS,
    DEFAULT_SETTLED_BY,
    MIGRATE_EVENT,
    Actor,
    Deadline,
    GiveUp,
    Guard,
    GuardContext,
    StateKind,
    StateSpec,
    TransitionSpec,
    transition,
)
from fsm.definition.table import DecisionTable, Moves

__all__ = [
    "AMOUNT_FIELDS",
    "BINDABLE_FIELDS",
    "DEFAULT_SETTLED_BY",
    "MIGRATE_EVENT",
    "Actor",
    "Deadline",
    "DecisionTable",
    "FlowCatalog",
    "FlowDefinition",
    "FlowMigration",
    "FlowVersions",
    "GiveUp",
    "Guard",
    "GuardContext",
    "Moves",
    "StateKind",
    "StateSpec",
    "TransitionSpec",
    "dump_flow",
    "flow_from_dict",
    "flow_to_dict",
    "load_flow_file",
    "transition",
]
