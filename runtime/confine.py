"""The Sentry locks itself in once its sandbox has booted (what gVisor's Sentry does).

Called by the process that is a sandbox's Sentry (`runpsc do`, the API's worker; the OCI
runtime's sandbox process only in part, see `confine_sentry`) after its gofers are connected, its network exists and before
its Kernel starts the first stub. Afterwards:

- network: the Sentry's own thread lives in the sandbox's network namespace (``none``: a
  fresh one with ``lo`` up, made here; ``sandbox``: slirp4netns's; ``host``: the host's;
  ``netns``: the one an OCI bundle names by path),
  so sockets are made there with no `setns` and no capability;
- IPC and UTS namespaces of its own;
- mount namespace: an empty read-only tmpfs as root (pivot_root; the host's root detached),
  holding only /etc's passwd and group copies, /fd (its own fds) and /proc, the host's
  procfs, needed for the stubs' /proc/PID/mem, maps, stat and the namespace links, with
  /proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus and /proc/fs read-only;
- capabilities: every one dropped (bounding, permitted, effective, inheritable, ambient)
  but `KEPT_CAPS`, and no_new_privs, so nothing exec'd (the stubs) regains any;
- every module it will import is imported first (`preload`): the Python installation is
  not reachable afterwards.

Not done (see sentry/README.md, "The Sentry confined"): a user namespace for a root
caller, a pid namespace, and a seccomp allow-list for the Sentry itself (its stubs are
forked from it and would inherit the filter).

The pieces (`pivot_to_empty_root`, `drop_capabilities`, `enter_user_namespace`) are the
gofer's (`gofer/confine.py`), so both processes are confined one way.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pkgutil
from typing import Any

#: CAP_NET_BIND_SERVICE: a sandboxed root may bind ports below 1024 of the sandbox's
#: network (the host socket is the Sentry's). Measured: every runtime test passes with
#: this alone (ptrace of the Sentry's own children, /proc/PID/mem of them, kill of stubs
#: and gofers and exec of the stub memfd need none).
CAP_NET_BIND_SERVICE = 10
KEPT_CAPS = (CAP_NET_BIND_SERVICE,)

_CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000
_PR_SET_NO_NEW_PRIVS = 38

#: Packages the Sentry imports lazily (inside functions) while serving.
_PACKAGES = ("p9", "vfs", "sentry")
#: Standard modules imported lazily by those packages or by the standard library itself
#: while serving (found by running the runtime tests confined).
_STDLIB = ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_16",
           "encodings.utf_32", "encodings.unicode_escape", "ipaddress", "json", "pwd", "grp",
           "shlex", "zlib", "hashlib", "random", "traceback", "linecache", "tokenize",
           "selectors", "subprocess", "logging", "locale", "unicodedata")


class ConfineError(OSError):
    """The Sentry could not lock itself in (no privilege for it, or threads running)."""


def preload(*, strace: bool = True) -> None:
    """Import every module of the Sentry's packages (and the standard ones they import
    lazily): after the pivot nothing on the host's disk can be read. `strace`: also
    `sentry.strace` (only the runtime imports it, and only for --strace: with
    python-ptrace's syscall prototypes it is most of what is left to import)."""
    from runtime.startup import glibc_sonames

    with glibc_sonames():  # no `ldconfig -p` child for modules that find libc
        _import_all(() if strace else ("sentry.strace",))


def _import_all(skip: tuple[str, ...]) -> None:
    for name in _STDLIB:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for pkg in _PACKAGES:
        _import_tree(importlib.import_module(pkg), skip)


def _import_tree(pkg: Any, skip: tuple[str, ...]) -> None:
    for info in pkgutil.iter_modules(pkg.__path__, f"{pkg.__name__}."):
        if info.name.startswith(skip) or info.name.endswith("_build"):
            continue  # cffi build scripts are not run code
        mod = importlib.import_module(info.name)
        if info.ispkg:
            _import_tree(mod, skip)


def confine_sentry(network: Any, *, host_files: bool = False, strace: bool = True) -> Any:
    """Lock this process in (see the module's docstring); returns the sandbox's Network
    (the one given, or for ``none`` (None given) the fresh namespace made here).

    `host_files`: only the namespaces and no_new_privs; the host's filesystem and the
    capabilities stay (the OCI runtime's sandbox process, which writes its state directory,
    binds its control socket and connects to console sockets by path while it serves).
    `strace`: whether the Sentry will trace (else `sentry.strace` is not imported).

    The process must be single-threaded (unshare of the mount namespace and of the user
    namespace move only a whole process). Not root: the walls are built inside a user
    namespace of our own where we stay ourselves, as the gofer does.
    """
    from runtime.startup import glibc_sonames
    from sentry.kernel.network import Network

    with glibc_sonames():  # python-ptrace looks libc up at import: no `ldconfig -p` child
        from gofer.confine import drop_capabilities, enter_user_namespace, pivot_to_empty_root

    if len(os.listdir("/proc/self/task")) != 1:
        raise ConfineError("the Sentry confines itself single-threaded (threads are running)")
    libc = ctypes.CDLL(None, use_errno=True)
    rootless = os.geteuid() != 0
    if network is None:  # ``none``: the Sentry's own fresh namespace is the sandbox's
        if rootless:
            enter_user_namespace()
        network = Network.isolated("none", stay=True)
    else:
        if network.mode != "host":
            network.join()
        if rootless:
            enter_user_namespace()
    if libc.unshare(_CLONE_NEWIPC | _CLONE_NEWUTS) != 0:
        e = ctypes.get_errno()
        raise ConfineError(e, f"unshare(CLONE_NEWIPC|CLONE_NEWUTS): {os.strerror(e)}")
    if not host_files:
        preload(strace=strace)
        pivot_to_empty_root(mountpoint="/tmp", proc=True, name="sentry-root")
        drop_capabilities(KEPT_CAPS if not rootless else ())
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise ConfineError(e, f"PR_SET_NO_NEW_PRIVS: {os.strerror(e)}")
    return network
