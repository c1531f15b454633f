"""Whether a stored instance row is where its replayed log leads: the check a full replay adds."""

from __future__ import annotations

from fsm.definition import FlowVersions
from fsm.model import Instance


def row_problem(
    lineage: FlowVersions,
    instance: Instance,
    state: str,
    applied: int,
    versions: tuple[int, ...],
) -> str | None:
    """Why the stored row does not match where its log leads, if it does not."""
    pinned = lineage.versions.get(instance.flow_version)
    ran = versions[-1] if versions else instance.flow_version
    if pinned is None:
        return f"stored row is pinned to version {instance.flow_version}, which its flow lacks"
    if instance.state not in pinned.state_map:
        return f"stored row is in state {instance.state!r}, which flow {lineage.name} does not know"
    if ran != instance.flow_version:
        return f"stored row is pinned to flow version {instance.flow_version}, the log to {ran}"
    state = state if versions else pinned.initial
    if (state, applied) != (instance.state, instance.version):
        return (
            f"stored row says {instance.state!r} at version {instance.version}, "
            f"the log leads to {state!r} at version {applied}"
        )
    return None


__all__ = ["row_problem"]
