"""Documented exceptions: cases a kind of target cannot express, with the reason.

Only departures listed here are tolerated in CI; each reason says why 9P2000.L (or the
target's design) cannot express the Linux behaviour. conformance/README.md lists the same
table for readers.
"""

from __future__ import annotations

import fnmatch

#: target kind -> [(case-id glob, reason)]
EXCEPTIONS: dict[str, list[tuple[str, str]]] = {}


def known_exception(kind: str, case_id: str) -> str | None:
    """The documented reason why target kind `kind` departs from Linux on `case_id`."""
    for pattern, reason in EXCEPTIONS.get(kind, ()):
        if fnmatch.fnmatchcase(case_id, pattern):
            return reason
    return None
