"""The container's host cgroup, as runc's cgroupfs driver makes it.

`create` makes the directory named by `linux.cgroupsPath` in every mounted hierarchy (each
v1 one and, hybrid or pure, the v2 one) and the container's process joins it before it forks
anything (gofers, zygote, stubs) and before it confines itself (runtime/confine.py: after the
lock-in it cannot reach /sys/fs/cgroup). So every host process of the sandbox is in it and
containerd's shim reads the sandbox's real usage there (`ctr task metrics`).

The CPU resources (shares, quota, period, cpus, mems) are written there: throttling the
Sentry with its programs is what they ask. Memory and pids limits are not: the Sentry's own
heap, its threads, gofers and stubs count there too, so the host limit would fail or
OOM-kill the Sentry before its own limit gives the program ENOMEM or EAGAIN.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from typing import Any

__all__ = ["CgroupError", "Cgroup", "cgroup_dirs"]

#: a v2 cgroup's `cpu.weight` from v1 shares, as runc converts it
_WEIGHT_SPAN = 9999


class CgroupError(Exception):
    """A cgroups path or resource that cannot be applied, with runc's kind of message."""


def _mounts() -> list[tuple[str, str, str]]:
    """(hierarchy key, mount root, mount point) of each cgroup mount, one per hierarchy.
    The key matches /proc/self/cgroup's second field (`cpu,cpuacct`, `name=systemd`, or ``
    for v2)."""
    seen: dict[str, tuple[str, str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            if rfields[0] == "cgroup2":
                key = ""
            else:
                opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro")
                        and (o.startswith("name=") or "=" not in o)]
                key = ",".join(sorted(o for o in opts if not o.startswith("name=")) +
                               [o for o in opts if o.startswith("name=")])
            seen.setdefault(key, (key, fields[3], fields[4]))
    return list(seen.values())


def _own_paths() -> dict[str, str]:
    """This process's cgroup in each hierarchy, keyed as `_mounts`."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            names = ctrl.split(",") if ctrl else []
            key = ",".join(sorted(n for n in names if not n.startswith("name=")) +
                           [n for n in names if n.startswith("name=")])
            out[key] = path
    return out


def _systemd_path(path: str) -> str:
    """`slice:prefix:name` as the directory systemd would give the scope
    (`a-b.slice` nests as `a.slice/a-b.slice`); no unit is made (docs/oci.md)."""
    parts = path.split(":")
    if len(parts) != 3:
        raise CgroupError(f"expected cgroupsPath to be of format \"slice:prefix:name\" "
                          f"for systemd cgroups, got \"{path}\" instead")
    slice_, prefix, name = parts
    slice_ = slice_ or "system.slice"
    dirs: list[str] = []
    if slice_ != "-.slice":
        if not slice_.endswith(".slice") or "/" in slice_:
            raise CgroupError(f"invalid slice name: {slice_}")
        stem = slice_[:-len(".slice")]
        words = stem.split("-")
        dirs = ["-".join(words[:i + 1]) + ".slice" for i in range(len(words))]
    unit = name if name.endswith(".slice") else (f"{prefix}-{name}.scope" if prefix
                                                 else f"{name}.scope")
    return "/" + "/".join([*dirs, unit])


def cgroup_dirs(cid: str, cgroups_path: str, systemd: bool) -> list[str]:
    """The container's directory in each mounted hierarchy. An absolute path is from the
    hierarchy's root, a relative one (and the default, the container's ID) from this
    process's own cgroup, as runc's cgroupfs driver places them."""
    path = cgroups_path or cid
    if systemd and ":" in path:
        path = _systemd_path(path)
    own = _own_paths()
    dirs: list[str] = []
    for key, root, point in _mounts():
        full = os.path.normpath(path if path.startswith("/")
                                else os.path.join(own.get(key, "/"), path))
        rel = os.path.relpath(full, root)
        if rel == "." or rel.startswith(".."):
            raise CgroupError(f"cgroupsPath {cgroups_path!r}: not below the root of "
                              f"{point}")
        dirs.append(os.path.join(point, rel))
    return dirs


def _write(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as f:
        f.write(value)


def _read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


class Cgroup:
    """The container's directories (state.json keeps them for `update` and `delete`)."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    def create(self) -> None:
        """Make the directories; a new v1 cpuset gets its parent's cpus and mems (else no
        process may join it)."""
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)
            if os.path.exists(os.path.join(d, "cpuset.cpus")) and \
                    not os.path.exists(os.path.join(d, "cgroup.controllers")):
                self._fill_cpuset(d)

    @staticmethod
    def _fill_cpuset(d: str) -> None:
        chain = []
        while os.path.exists(os.path.join(d, "cpuset.cpus")):
            chain.append(d)
            d = os.path.dirname(d)
        for child in reversed(chain[:-1]):  # below the hierarchy's root, top-down
            parent = os.path.dirname(child)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(child, name):
                    _write(child, name, _read(parent, name))

    def join(self, pid: int = 0) -> None:
        """Move PID (0: the caller) into every directory."""
        for d in self.dirs:
            _write(d, "cgroup.procs", str(pid))

    def set_cpu(self, cpu: Any) -> list[str]:
        """Write linux.resources.cpu's shares, quota, period, cpus, mems; return the names
        written (`cpu.shares`, ...)."""
        if not isinstance(cpu, dict):
            raise CgroupError("linux.resources.cpu: want an object")
        applied: list[str] = []
        shares, quota, period = cpu.get("shares"), cpu.get("quota"), cpu.get("period")
        for name, v in (("shares", shares), ("quota", quota), ("period", period)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise CgroupError(f"linux.resources.cpu.{name}: want an integer")
        for name in ("cpus", "mems"):
            if cpu.get(name) is not None and not isinstance(cpu[name], str):
                raise CgroupError(f"linux.resources.cpu.{name}: want a string")
        try:
            for d in self.dirs:
                v2 = os.path.exists(os.path.join(d, "cgroup.controllers"))
                if shares and os.path.exists(os.path.join(d, "cpu.shares")):
                    _write(d, "cpu.shares", str(shares))
                elif shares and v2 and os.path.exists(os.path.join(d, "cpu.weight")):
                    _write(d, "cpu.weight", str(1 + (shares - 2) * _WEIGHT_SPAN // 262142))
                if os.path.exists(os.path.join(d, "cpu.cfs_quota_us")):
                    if period:
                        _write(d, "cpu.cfs_period_us", str(period))
                    if quota is not None and quota != 0:
                        _write(d, "cpu.cfs_quota_us", str(quota if quota > 0 else -1))
                elif v2 and os.path.exists(os.path.join(d, "cpu.max")) and \
                        (quota or period):
                    old_q, old_p = _read(d, "cpu.max").split()
                    q = old_q if not quota else (str(quota) if quota > 0 else "max")
                    _write(d, "cpu.max", f"{q} {period or old_p}")
                for name in ("cpus", "mems"):
                    if cpu.get(name) and os.path.exists(os.path.join(d, f"cpuset.{name}")):
                        _write(d, f"cpuset.{name}", cpu[name])
        except OSError as e:
            raise CgroupError(f"unable to set cpu resources: {e}") from None
        applied += [f"cpu.{n}" for n in ("shares", "quota", "period", "cpus", "mems")
                    if cpu.get(n) is not None]
        return applied

    def destroy(self) -> list[str]:
        """Kill whatever is left in the directories (the container is stopped), wait for
        it, and remove them (runc retries an rmdir that races the last exit). Returns the
        directories that could not be removed."""
        pids: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in _read(d, "cgroup.procs").split()}
        for pid in pids:
            with contextlib.suppress(OSError):
                fd = os.pidfd_open(pid)
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    p = select.poll()
                    p.register(fd, select.POLLIN)
                    p.poll(5000)
                finally:
                    os.close(fd)
        left = []
        for d in self.dirs:
            delay = 0.01
            for _ in range(8):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        left.append(d)
                        break
                    time.sleep(delay)  # a task still leaving (runc retries alike)
                    delay *= 2
            else:
                left.append(d)
        return left
