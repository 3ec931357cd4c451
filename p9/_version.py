"""Version strings and the extensions each one switches on (see p9/README.md).

- ``9P2000.L``: the plain protocol; a peer that speaks only this never sees an extension.
- ``9P2000.L.runpsc.1``: our dialect: every extension message in `Dialect`.
- ``9P2000.L.Google.N``: gVisor's dialects. Levels are cumulative; we fully implement
  levels 1 (Tflushf), 2 (Twalkgetattr) and 3 (Tucreate/Tumkdir/Tumknod/Tusymlink). Level 4
  needs Tlconnect (host socket fds over SCM_RIGHTS) and level 8 flipcall shared-memory
  channels, which we do not implement, so a gVisor client asking for N > 3 is answered
  ``9P2000.L.Google.3`` (it accepts any ``9P2000.L.Google.M`` or ``9P2000.L``).
"""

from __future__ import annotations

import dataclasses

BASE = b"9P2000.L"
RUNPSC = b"9P2000.L.runpsc.1"
GOOGLE_PREFIX = b"9P2000.L.Google."
#: Highest gVisor level whose every feature we implement.
GOOGLE_MAX = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Dialect:
    """What a negotiated version string allows on the connection."""

    version: bytes = BASE
    flushf: bool = False
    walkgetattr: bool = False
    ucreate: bool = False
    allocate: bool = False
    getsetxattr: bool = False
    listremovexattr: bool = False
    setattrclunk: bool = False
    multigetattr: bool = False
    readdirattr: bool = False
    #: Tlopenfd: a read-only open of a regular file may come with its host descriptor
    #: (SCM_RIGHTS on a unix socket; see p9/README.md, "Donated descriptors").
    lopenfd: bool = False
    #: Topendirattr: walk, open and the first Treaddirattr of a directory in one request.
    opendirattr: bool = False


PLAIN = Dialect()
OURS = Dialect(RUNPSC, True, True, True, True, True, True, True, True, True, True, True)


def google_dialect(level: int) -> Dialect:
    """The dialect for ``9P2000.L.Google.<level>`` (level ≤ GOOGLE_MAX)."""
    if level == 0:
        return PLAIN
    return Dialect(
        version=GOOGLE_PREFIX + str(level).encode(),
        flushf=level >= 1,
        walkgetattr=level >= 2,
        ucreate=level >= 3,
    )


def parse_google(version: bytes) -> int | None:
    """Return N for ``9P2000.L.Google.N`` (0 for plain ``9P2000.L``), else None."""
    if version == BASE:
        return 0
    if not version.startswith(GOOGLE_PREFIX):
        return None
    tail = version[len(GOOGLE_PREFIX) :]
    if not tail.isdigit() or len(tail) > 10:
        return None
    return int(tail)


def server_choose(requested: bytes) -> Dialect | None:
    """The dialect a server answers a Tversion with, or None for "unknown".

    Any version that starts with ``9P2000.L`` and that we do not know more precisely gets
    plain ``9P2000.L``, as the 9P spec allows ("a version string identifying an earlier
    defined protocol version").
    """
    if requested == RUNPSC:
        return OURS
    level = parse_google(requested)
    if level is not None:
        return google_dialect(min(level, GOOGLE_MAX))
    if requested.startswith(BASE):
        return PLAIN
    return None


def client_accept(offered: bytes, answered: bytes) -> Dialect | None:
    """The dialect a client uses after offering `offered` and getting `answered`.

    Returns None if the answer is not a 9P2000.L dialect (for example ``unknown``).
    """
    if answered == RUNPSC and offered == RUNPSC:
        return OURS
    level = parse_google(answered)
    if level is not None and answered != BASE:
        offered_level = parse_google(offered)
        if offered_level is None or level > offered_level:
            return None
        return google_dialect(min(level, GOOGLE_MAX))
    if answered == BASE:
        return PLAIN
    return None
