"""Moving in-flight instances from one version of a flow to the next, as declared data.

A :class:`FlowMigration` maps every non-final state of version N to a state of version N+1. It
is validated against both definitions when a catalog is built, so a bad map fails at import:
each non-final state must be mapped, every named state must exist, and a migration moves no
money: a settled state goes only to a state of the same outcome, and an unsettled state never to
a settlement state (only a provider's answer or an operator's decision settles a payment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fsm.definition.flow import FlowDefinition
from fsm.definition.spec import StateSpec, set_field
from fsm.errors import FlowMigrationError


@dataclass(frozen=True)
class FlowMigration:
    """Where each non-final state of ``flow`` version ``from_version`` goes in the next version."""

    flow: str
    from_version: int
    states: Mapping[str, str]
    """Every non-final state of the old version, to a state of the new one."""
    name: str = ""
    """Recorded with every step the migration applies; ``<flow>:v<N>-v<N+1>`` when not given."""
    description: str = ""
    to_version: int = field(init=False)

    def __post_init__(self) -> None:
        set_field(self, "flow", str(self.flow))
        set_field(self, "to_version", self.from_version + 1)
        set_field(
            self, "states", MappingProxyType({str(k): str(v) for k, v in self.states.items()})
        )
        if not self.name:
            set_field(self, "name", f"{self.flow}:v{self.from_version}-v{self.to_version}")

    def target(self, state: str) -> str | None:
        """Where an instance in ``state`` goes; ``None`` for a state the map leaves alone."""
        return self.states.get(state)

    def check(self, old: FlowDefinition, new: FlowDefinition) -> None:
        """Validate the map against the two definitions it joins.

        Raises:
            FlowMigrationError: naming every problem found.
        """
        problems = _version_problems(self, old, new)
        if not problems:
            problems = [problem for source in _sources(self, old) for problem in source]
            problems += _targets(self, old, new)
        if problems:
            raise FlowMigrationError(self.name, problems)


def _version_problems(
    migration: FlowMigration, old: FlowDefinition, new: FlowDefinition
) -> list[str]:
    problems = []
    if (old.name, old.version) != (migration.flow, migration.from_version):
        problems.append(
            f"it migrates from {migration.flow} v{migration.from_version},"
            f" not {old.name} v{old.version}"
        )
    if (new.name, new.version) != (migration.flow, migration.to_version):
        problems.append(
            f"it migrates to {migration.flow} v{migration.to_version},"
            f" not {new.name} v{new.version}"
        )
    return problems


def _sources(migration: FlowMigration, old: FlowDefinition) -> list[list[str]]:
    missing = [
        f"state {state.name!r} of v{old.version} is not mapped"
        for state in old.states
        if not state.final and state.name not in migration.states
    ]
    unknown = [
        f"v{old.version} has no state {name!r}"
        for name in migration.states
        if name not in old.state_map
    ]
    final = [
        f"state {name!r} of v{old.version} is final: a finished instance keeps its version"
        for name in migration.states
        if name in old.state_map and old.state(name).final
    ]
    return [missing, unknown, final]


def _targets(migration: FlowMigration, old: FlowDefinition, new: FlowDefinition) -> list[str]:
    problems = []
    for source, target in migration.states.items():
        if target not in new.state_map:
            problems.append(f"{source!r} goes to {target!r}, which v{new.version} does not have")
        elif source in old.state_map:
            problem = _money_problem(old.state(source), new.state(target))
            if problem:
                problems.append(f"{source!r} goes to {target!r}: {problem}")
    return problems


def _money_problem(source: StateSpec, target: StateSpec) -> str | None:
    if source.kind.settled and target.kind != source.kind:
        return f"a settled instance keeps its outcome ({source.kind}), not {target.kind}"
    if not source.kind.settled and (target.settlement or target.kind.settled):
        return "a migration may not settle a payment"
    return None


__all__ = ["FlowMigration"]
