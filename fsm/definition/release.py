"""The release lock: each released version of a flow, tied to the fingerprint it shipped with.

A log row names the version it ran under, and replay checks it against that version's
definition, so a released version's content must never change: a change ships as a new version.
The lock is JSON committed beside the flows (``{"flow": {"1": "sha256:..."}}``); checking a
catalog against it names every released version whose content changed and every released
version the code no longer has. A version not in the lock yet is new, to be released.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fsm.definition.catalog import FlowCatalog
from fsm.errors import ConfigurationError

Lock = Mapping[str, Mapping[str, str]]
"""Flow name to version number (as text, as JSON keys are) to fingerprint."""


@dataclass(frozen=True)
class LockReport:
    """What checking a catalog against a lock found."""

    changed: tuple[str, ...]
    """Released versions whose content (fingerprint) changed, or that the code no longer has."""
    unreleased: tuple[str, ...]
    """Versions in the code that the lock does not hold yet: new, to be released."""

    @property
    def holds(self) -> bool:
        """Whether every released version is in the code unchanged."""
        return not self.changed


def read_lock(path: Path) -> Lock:
    """The lock in the JSON file at ``path``.

    Raises:
        ConfigurationError: the file is missing or is not a lock.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the release lock {path}: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(f, str) for f in v.values()) for v in data.values()
    ):
        raise ConfigurationError(
            f"{path} is not a release lock: {{flow: {{version: fingerprint}}}}"
        )
    return data


def locked(catalog: FlowCatalog, lock: Lock) -> dict[str, dict[str, str]]:
    """``lock`` with every version of ``catalog`` it lacks added: what releasing them writes.

    Raises:
        ConfigurationError: a released version changed; it must not be released over.
    """
    report = check_lock(catalog, lock)
    if not report.holds:
        raise ConfigurationError("; ".join(report.changed))
    updated = {name: dict(versions) for name, versions in lock.items()}
    for flow in catalog.released():
        updated.setdefault(flow.name, {})[str(flow.version)] = flow.fingerprint
    return {
        name: dict(sorted(v.items(), key=lambda kv: int(kv[0])))
        for name, v in sorted(updated.items())
    }


def check_lock(catalog: FlowCatalog, lock: Lock) -> LockReport:
    """Compare every version of every flow in ``catalog`` with the fingerprints in ``lock``."""
    changed, unreleased = [], []
    for flow in catalog.released():
        shipped = lock.get(flow.name, {}).get(str(flow.version))
        if shipped is None:
            unreleased.append(f"{flow.name} v{flow.version} is new ({flow.fingerprint})")
        elif shipped != flow.fingerprint:
            changed.append(
                f"{flow.name} v{flow.version} changed since its release ({shipped} is now"
                f" {flow.fingerprint}): ship the change as version {_next(catalog, flow.name)}"
            )
    for name, versions in lock.items():
        present = catalog.lineage(name).versions if name in catalog else {}
        changed += [
            f"{name} v{number} was released but the code no longer has it: keep every version"
            for number in versions
            if int(number) not in present
        ]
    return LockReport(tuple(changed), tuple(unreleased))


def _next(catalog: FlowCatalog, name: str) -> int:
    return max(catalog.lineage(name).versions) + 1


def write_lock(path: Path, lock: Lock) -> None:
    """Write ``lock`` to ``path`` as the committed file has it: indented, sorted, one newline."""
    path.write_text(json.dumps(lock, indent=2, sort_keys=False) + "\n", encoding="utf-8")


__all__ = ["Lock", "LockReport", "check_lock", "locked", "read_lock", "write_lock"]
