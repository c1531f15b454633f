"""Release every flow version that is new: add its fingerprint to the release lock.

A released version's fingerprint is never changed here: a flow whose released content changed
is refused, and the change must ship as a new version. Run after adding a version; commit the
lock with it.

    python scripts/release_flows.py            # the built-in flows, fsm/flows/released.json
    python scripts/release_flows.py --check    # only say whether the lock holds
"""

from __future__ import annotations

import argparse
import sys

from fsm.definition.release import check_lock, locked, read_lock, write_lock
from fsm.errors import ConfigurationError
from fsm.flows import FLOWS, RELEASE_LOCK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the lock")
    args = parser.parse_args()
    lock = read_lock(RELEASE_LOCK) if RELEASE_LOCK.exists() else {}
    report = check_lock(FLOWS, lock)
    for line in (*report.changed, *report.unreleased):
        print(line)
    if args.check:
        return 0 if report.holds else 1
    try:
        write_lock(RELEASE_LOCK, locked(FLOWS, lock))
    except ConfigurationError:
        return 1
    print(f"{RELEASE_LOCK} holds {sum(1 for _ in FLOWS.released())} released versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
