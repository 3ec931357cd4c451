"""Each container's state directory, `ROOT/ID/` (runc keeps the same shape under its root).

    state.json    id, bundle, pid and its start time, created, annotations, cgroup directories
    control.sock  the container's Sentry listens here (start, exec, kill, ps, pause, stats)
    started       made by the Sentry once pid 1 runs
    paused        made by the Sentry while the sandbox is frozen (`pause`)

Why the pid's start time: a pid is reused after the container's process ends; a process
with that pid and another start time is not ours, and the container is stopped.
Status, as runc derives it: the process gone (or a zombie) → stopped; frozen → paused
(a created container too); `start` done → running; else created.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.oci.spec import OCI_VERSION

__all__ = ["StateError", "ContainerState", "StateDir", "valid_id", "proc_start_time",
           "DEFAULT_ROOT"]

DEFAULT_ROOT = "/run/runpsc"
_ID = re.compile(r"^[\w+\-.]+$")


class StateError(Exception):
    """A lifecycle error, with runc's message (`str(e)`)."""


def valid_id(cid: str) -> bool:
    """runc's rule: letters, digits, ``_ + - .``, not ``.`` or ``..``."""
    return bool(_ID.match(cid)) and cid not in (".", "..")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if there is no such
    process or it is a zombie (a container whose process is a zombie is stopped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class ContainerState:
    id: str
    bundle: str
    rootfs: str
    pid: int = 0
    start_time: int = 0
    created: str = field(default_factory=_now)
    started: bool = False  # not saved: `started` in the directory says it
    paused: bool = False  # not saved: `paused` in the directory says it
    annotations: dict[str, str] = field(default_factory=dict)
    owner: str = ""
    cgroups: list[str] = field(default_factory=list)  # its directories (runtime/oci/cgroups.py)

    def alive(self) -> bool:
        return self.pid > 0 and proc_start_time(self.pid) == self.start_time

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        if self.paused:
            return "paused"
        return "running" if self.started else "created"

    def oci(self) -> dict[str, Any]:
        """The OCI state (what `runpsc state` prints), with runc's fields."""
        status = self.status()
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION, "id": self.id,
            "pid": 0 if status == "stopped" else self.pid, "status": status,
            "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out


#: sockaddr_un's sun_path, its terminating NUL included.
_SUN_PATH_MAX = 108


#: The subdirectory of a container's where its Sentry marks that it started or is paused:
#: the one place it writes once locked in, and the one it owns (runtime/confine.py: a root
#: caller's Sentry has an id of its own, and state.json stays out of its reach).
MARKS = "marks"


class StateDir:
    """The `--root` directory: one subdirectory per container."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def path(self, cid: str, name: str = "") -> str:
        return os.path.join(self.root, cid, name) if name else os.path.join(self.root, cid)

    @contextlib.contextmanager
    def control_address(self, cid: str) -> Iterator[str]:
        """ID's control socket as an AF_UNIX address: its path, or, when that is longer than
        sun_path holds (Docker's root is deep and its IDs are 64 characters), the same file
        reached through an open descriptor of ID's directory."""
        path = self.path(cid, "control.sock")
        if len(os.fsencode(path)) < _SUN_PATH_MAX:
            yield path
            return
        fd = os.open(self.path(cid), os.O_PATH | os.O_DIRECTORY)
        try:
            yield f"/proc/self/fd/{fd}/control.sock"
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise creations and deletions (two `create ID` at once: one wins)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reserve(self, cid: str) -> None:
        """Make ID's directory, or fail as runc does for an ID in use or a malformed one."""
        if not valid_id(cid):
            raise StateError("invalid container ID format")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path(cid), 0o711)
        except FileExistsError:
            raise StateError("container with given ID already exists") from None

    def load(self, cid: str) -> ContainerState:
        """ID's state, or StateError("container does not exist")."""
        if not valid_id(cid):
            raise StateError("container does not exist")
        try:
            with open(self.path(cid, "state.json")) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            raise StateError("container does not exist") from None
        st = ContainerState(**doc)
        st.started = os.path.exists(self.path(cid, f"{MARKS}/started"))  # the Sentry's marks
        st.paused = os.path.exists(self.path(cid, f"{MARKS}/paused"))
        return st

    def save(self, st: ContainerState) -> None:
        """Write state.json atomically (readers never see half of it)."""
        tmp = self.path(st.id, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(st), f)
        os.replace(tmp, self.path(st.id, "state.json"))

    def remove(self, cid: str) -> None:
        shutil.rmtree(self.path(cid), ignore_errors=True)

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.exists(self.path(n, "state.json"))]
