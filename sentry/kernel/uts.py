"""UTS namespaces: the host and domain names uname(2) reports.

The sandbox starts with one (`Kernel.uts`, whose names `Kernel.hostname` and
`Kernel.domainname` are); unshare(CLONE_NEWUTS) gives a task a copy of its own (`Task.uts`),
which its children inherit. uname, sethostname, setdomainname and
/proc/sys/kernel/{hostname,domainname} all read and change the caller's (`uts_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .task import Task


@dataclass(slots=True)
class Uts:
    """One UTS namespace's names."""

    hostname: bytes
    domainname: bytes = b"(none)"
    ino: int = 4026531838  # its nsfs inode (/proc/PID/ns/uts): the initial namespace's


def uts_of(t: Task) -> Uts:
    """The UTS namespace `t` is in."""
    return t.uts if t.uts is not None else t.kernel.uts
