"""Every released version of each flow, and the migrations between them.

A :class:`FlowCatalog` reads as a mapping from a flow's name to its newest version, which is
what new instances are pinned to, so code that looks a flow up by name keeps working; the
older versions stay beside it for the instances (and the logged steps) that run under them.
A :class:`FlowVersions` is one flow's versions and migrations: what replay checks a log against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from fsm.definition.flow import FlowDefinition
from fsm.definition.migration import FlowMigration
from fsm.errors import FlowDefinitionError, UnknownFlow, UnknownFlowVersion, UnknownMigration


class FlowVersions:
    """The released versions of one flow and the migrations that join them."""

    def __init__(
        self, versions: Iterable[FlowDefinition], migrations: Iterable[FlowMigration] = ()
    ) -> None:
        """Index ``versions`` by number and check each migration against the two it joins.

        Raises:
            FlowDefinitionError: versions of different flows, or one version given twice.
            FlowMigrationError: a migration does not fit the versions it joins.
            UnknownFlowVersion: a migration names a version that is not given.
        """
        flows = sorted(versions, key=lambda flow: flow.version)
        if not flows:
            raise FlowDefinitionError("<none>", ["a flow needs at least one version"])
        self.name = flows[0].name
        problems = [f"{flow.name} is not {self.name}" for flow in flows if flow.name != self.name]
        numbers = [flow.version for flow in flows]
        problems += [
            f"version {n} is given twice" for n in sorted(set(numbers)) if numbers.count(n) > 1
        ]
        if problems:
            raise FlowDefinitionError(self.name, problems)
        self.versions: Mapping[int, FlowDefinition] = MappingProxyType(
            {f.version: f for f in flows}
        )
        self.latest: FlowDefinition = flows[-1]
        self.migrations: Mapping[int, FlowMigration] = MappingProxyType(
            {m.from_version: self._checked(m) for m in migrations}
        )

    @classmethod
    def of(cls, flow: FlowDefinition | FlowVersions) -> FlowVersions:
        """``flow`` itself, or a single definition as the one version there is."""
        return flow if isinstance(flow, FlowVersions) else cls((flow,))

    def version(self, number: int) -> FlowDefinition:
        """The definition of version ``number``.

        Raises:
            UnknownFlowVersion: no such version was released.
        """
        try:
            return self.versions[number]
        except KeyError:
            raise UnknownFlowVersion(self.name, number, sorted(self.versions)) from None

    def migration(self, from_version: int, to_version: int) -> FlowMigration:
        """The declared migration from ``from_version`` to ``to_version``.

        Raises:
            UnknownMigration: none is declared (migrations go one version up at a time).
        """
        migration = self.migrations.get(from_version)
        if migration is None or migration.to_version != to_version:
            raise UnknownMigration(self.name, from_version, to_version)
        return migration

    def _checked(self, migration: FlowMigration) -> FlowMigration:
        migration.check(self.version(migration.from_version), self.version(migration.to_version))
        return migration


class FlowCatalog(Mapping[str, FlowDefinition]):
    """Flows by name, each name giving its newest version; every version kept beside it."""

    def __init__(
        self, flows: Iterable[FlowDefinition], migrations: Iterable[FlowMigration] = ()
    ) -> None:
        """Group ``flows`` (every released version of each) and their ``migrations`` by name.

        Raises:
            FlowDefinitionError: a version given twice, or a migration that does not fit.
            UnknownFlowVersion: a migration names a version that is not given.
        """
        by_name: dict[str, list[FlowDefinition]] = {}
        for flow in flows:
            by_name.setdefault(flow.name, []).append(flow)
        moves: dict[str, list[FlowMigration]] = {}
        for migration in migrations:
            if migration.flow not in by_name:
                raise UnknownFlow(migration.flow, sorted(by_name))
            moves.setdefault(migration.flow, []).append(migration)
        self._lineages = {
            name: FlowVersions(versions, moves.get(name, ())) for name, versions in by_name.items()
        }

    @classmethod
    def of(cls, flows: Mapping[str, FlowDefinition]) -> FlowCatalog:
        """``flows`` itself when it is a catalog, else each flow given as its only version."""
        return flows if isinstance(flows, FlowCatalog) else cls(flows.values())

    def __getitem__(self, name: str) -> FlowDefinition:
        return self._lineages[name].latest

    def __iter__(self) -> Iterator[str]:
        return iter(self._lineages)

    def __len__(self) -> int:
        return len(self._lineages)

    def lineage(self, name: str) -> FlowVersions:
        """Every version of the flow called ``name``.

        Raises:
            UnknownFlow: no such flow.
        """
        try:
            return self._lineages[name]
        except KeyError:
            raise UnknownFlow(name, sorted(self._lineages)) from None

    def version(self, name: str, version: int) -> FlowDefinition:
        """Version ``version`` of the flow called ``name``.

        Raises:
            UnknownFlow: no such flow (:class:`UnknownFlowVersion`: no such version of it).
        """
        return self.lineage(name).version(version)

    def released(self) -> Iterator[FlowDefinition]:
        """Every version of every flow, by name and then version."""
        for name in sorted(self._lineages):
            yield from self._lineages[name].versions.values()


__all__ = ["FlowCatalog", "FlowVersions"]
