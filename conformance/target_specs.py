"""Target specifications (`dir:PATH`, `9p:ADDRESS,aname=NAME`, `vfs:KIND`,
`sandbox:WHERE`) and how to open them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import p9

from .target_api import Target


class TargetSpecError(ValueError):
    """A target specification that cannot be understood or opened."""


@dataclass(frozen=True, slots=True)
class OpenedTarget:
    """A target ready for a run: its root view, the label shown, and its kind (which
    selects the documented exceptions)."""

    target: Target
    label: str
    kind: str


def _mount_kind(path: str) -> str:
    """'fuse-9p' when `path` is on a runpsc 9P FUSE mount, else 'dir'."""
    real = os.path.realpath(path)
    best, kind = "", "dir"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                mnt = parts[4]
                fstype = parts[parts.index("-") + 1]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, ("fuse-9p" if fstype.startswith("fuse.runpsc-9p") else "dir")
    except OSError:
        pass
    return kind


#: `vfs:` kinds besides `vfs:9p:ADDRESS,aname=NAME` (goferfs on any 9P2000.L server).
VFS_KINDS = ("tmpfs", "overlay", "gofer", "gofer-shared", "overlay-gofer", "overlay-copyup",
             "overlay-gofer-copyup")


def check_spec(spec: str) -> None:
    """Reject a malformed specification before anything runs (TargetSpecError)."""
    scheme, sep, rest = spec.partition(":")
    if not sep:
        raise TargetSpecError(f"target {spec!r} has no scheme (dir:, 9p:, vfs:, sandbox:)")
    if scheme == "dir":
        if not os.path.isdir(rest):
            raise TargetSpecError(f"target {spec!r}: {rest!r} is not a directory")
    elif scheme == "9p":
        _check_9p(spec, rest)
    elif scheme == "vfs":
        if rest.startswith("9p:"):
            _check_9p(spec, rest[3:])
        elif rest not in VFS_KINDS:
            raise TargetSpecError(f"unknown vfs target {rest!r} ({', '.join(VFS_KINDS)}, "
                                  "9p:ADDRESS,aname=NAME)")
    elif scheme == "sandbox":
        from .target_sandbox import SANDBOX_KINDS
        if rest.startswith("9p:"):
            try:  # (the options are `runpsc do --mount`'s, checked there)
                p9.parse_address(rest[3:].split(",")[0])
            except ValueError as e:
                raise TargetSpecError(str(e)) from None
        elif rest not in SANDBOX_KINDS:
            raise TargetSpecError(f"unknown sandbox target {rest!r} ({', '.join(SANDBOX_KINDS)}, "
                                  "9p:ADDRESS,aname=NAME)")
    else:
        raise TargetSpecError(f"unknown target scheme {scheme!r} in {spec!r} (dir:, 9p:, vfs:, "
                              "sandbox:)")


def _check_9p(spec: str, rest: str) -> None:
    from .target_9p import parse_address
    try:
        addr, _ = parse_address(rest)
    except ValueError as e:
        raise TargetSpecError(str(e)) from None
    try:
        p9.parse_address(addr)
    except ValueError:
        raise TargetSpecError(f"bad 9p address {addr!r} in {spec!r}; expected "
                              "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT") from None


@contextlib.asynccontextmanager
async def open_target(spec: str, *,
                      tls: p9.TLSClientConfig | None = None) -> AsyncIterator[OpenedTarget]:
    """Open the target named by `spec` for the duration of the block (`tls`: for a
    tls:HOST:PORT address)."""
    check_spec(spec)
    scheme, _, rest = spec.partition(":")
    if scheme == "dir":
        from .target_dir import DirTarget
        kind = _mount_kind(rest)
        # Worker threads let cases overlap on a slow (FUSE) filesystem.
        t = DirTarget(rest, threads=8 if kind != "dir" else 0)
        try:
            yield OpenedTarget(t, spec, kind)
        finally:
            await t.aclose()
    elif scheme == "9p":
        from .target_9p import open_9p
        async with open_9p(rest, tls=tls) as nt:
            yield OpenedTarget(nt, spec, "9p")
    elif scheme == "vfs":
        from .target_vfs import open_vfs
        async with open_vfs(rest, tls=tls) as vt:
            yield OpenedTarget(vt, spec, "vfs-9p" if rest.startswith("9p:") else f"vfs-{rest}")
    elif scheme == "sandbox":
        from .target_sandbox import open_sandbox, sandbox_kind
        async with open_sandbox(rest, tls=tls) as st:
            yield OpenedTarget(st, spec, sandbox_kind(rest))


@contextlib.asynccontextmanager
async def open_oracle(base: str | None = None) -> AsyncIterator[OpenedTarget]:
    """The oracle: the host kernel on a fresh directory under `base` (default: $TMPDIR)."""
    from .target_dir import DirTarget
    d = tempfile.mkdtemp(prefix="runpsc-oracle-", dir=base)
    os.chmod(d, 0o755)  # unprivileged cases must be able to reach their directories
    t = DirTarget(d)
    try:
        yield OpenedTarget(t, f"dir:{d}", "dir")
    finally:
        await t.aclose()
        with contextlib.suppress(OSError):
            os.rmdir(d)
