"""Everything `runpsc do` does to start quickly, in one place, each measure switchable.

Issue 7's budget is `runpsc do /bin/true` under 250 ms, and most of that time is Python
importing trio, click, p9, the VFS and the Sentry. `Startup` is the whole of it: what is
imported when (`BEFORE_FORK`, `SENTRY`: the one list of start-up imports), and the measures
that make those imports and the exit cheaper. Each measure keeps the behaviour of the plain
way and stays only while `bench/startup_measures.py` measures a gain (bench/RESULTS.md):

- "gc": the garbage collector is off while importing (imports allocate many objects and no
  garbage), and what they built is frozen out of later collections (so a forked gofer's
  first collection does not walk, and copy, every page of it).
- "defer": standard-library modules that trio and pyelftools import but `runpsc do` never
  uses (ssl, hashlib, hmac, idna, pdb) load on first use instead (`defer_modules`).
- "sonames": ctypes.util.find_library answered directly for glibc's libraries while
  importing (`glibc_sonames`; on Linux each call otherwise runs `ldconfig -p` in a child).
- "exit": leave without tearing the interpreter down (`exit_now`).

`RUNPSC_STARTUP_OFF=gc,defer,...` turns measures off, for the benchmark only.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import NoReturn

__all__ = ["BEFORE_FORK", "DEFERRABLE", "MEASURES", "OFF_ENV", "SENTRY", "Startup",
           "defer_modules", "exit_now", "glibc_sonames", "load_deferred"]

#: What `runpsc do` imports before it forks the gofers: they serve with trio and p9, so
#: both are imported once, and the gofers confine themselves while this process imports
#: `SENTRY`.
BEFORE_FORK = ("trio", "p9", "runtime.sandbox")
#: What `Sandbox.run` imports lazily (so that `import runtime.sandbox` stays cheap): the
#: Sentry with every syscall handler, the VFS and its filesystems (runtime.hostterm comes
#: only for a sandbox on a terminal).
SENTRY = ("sentry.kernel.fdtable", "sentry.kernel.kernel",
          "sentry.procfs", "sentry.syscalls", "vfs", "vfs.abi", "vfs.fs.devfs",
          "vfs.fs.devpts", "vfs.fs.goferfs", "vfs.fs.host", "vfs.fs.overlay",
          "vfs.fs.pipefs", "vfs.fs.procfs", "vfs.fs.synthetic", "vfs.fs.sysfs", "vfs.mount")
#: The measures `Startup` applies (see the module's docstring).
MEASURES = ("gc", "defer", "sonames", "exit")
#: The environment variable listing measures to leave off (bench/startup_measures.py).
OFF_ENV = "RUNPSC_STARTUP_OFF"


class Startup:
    """`runpsc do`'s start: its imports, in order, with the measures that are on."""

    __slots__ = ("off",)

    def __init__(self, off: Iterable[str] = ()) -> None:
        self.off = frozenset(off)
        unknown = self.off - set(MEASURES)
        if unknown:
            raise ValueError(f"{OFF_ENV}: unknown start-up measure(s) {sorted(unknown)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Startup:
        """The measures `environ`'s RUNPSC_STARTUP_OFF leaves on (all, without it)."""
        return cls(n for n in environ.get(OFF_ENV, "").split(",") if n)

    def on(self, measure: str) -> bool:
        """Whether `measure` (one of MEASURES) is applied."""
        return measure not in self.off

    def begin(self) -> None:
        """Before any import of `runpsc do`'s own: collector off, unused modules deferred."""
        if self.on("gc"):
            gc.disable()
        if self.on("defer"):
            defer_modules(*DEFERRABLE)

    def import_modules(self, names: Iterable[str]) -> None:
        """Import `names` in order (find_library answered for glibc meanwhile)."""
        with glibc_sonames() if self.on("sonames") else contextlib.nullcontext():
            for name in names:
                importlib.import_module(name)

    def import_before_fork(self) -> None:
        """Import `BEFORE_FORK` (what the forked gofers serve with)."""
        self.import_modules(BEFORE_FORK)

    def before_fork(self) -> None:
        """Everything allocated so far is still in the young generation (the collector is
        off): freeze it, or a gofer's first collection walks all of it, copying every page."""
        if self.on("gc"):
            gc.freeze()

    def import_sentry(self, *, strace: bool = False) -> None:
        """Import `SENTRY` (and `sentry.strace` for --strace), then turn the collector on."""
        names = list(SENTRY)
        if strace:  # its decoders come from python-ptrace, which looks up libc
            names.append("sentry.strace")
        self.import_modules(names)
        if self.on("gc"):
            gc.freeze()
            gc.enable()

    def exit(self, code: int) -> NoReturn:
        """Leave with `code` (see `exit_now`)."""
        if self.on("exit"):
            exit_now(code)
        sys.exit(code)


#: glibc's sonames on Linux (x86_64, the only platform runpsc supports) of what trio,
#: python-ptrace and the Sentry look up by name.
GLIBC_SONAMES = {"c": "libc.so.6", "pthread": "libpthread.so.0"}


@contextlib.contextmanager
def glibc_sonames() -> Iterator[None]:
    """While importing, answer ctypes.util.find_library for libc and libpthread directly.

    Why: trio (thread names), python-ptrace and the Sentry's platform look these up by name
    when imported, and on Linux each find_library runs `ldconfig -p` in a child process (a
    fork of this already large process, on the critical path). Under glibc the answers are
    fixed sonames; other names, and other C libraries, are looked up as before.
    """
    import ctypes.util

    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        glibc = False
    if not glibc:
        yield
        return
    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return GLIBC_SONAMES.get(name) or original(name)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = original


#: Modules `runpsc do` imports (through trio and pyelftools) but never uses: TLS and DTLS
#: (ssl, and hashlib and hmac for DTLS cookies), IDNA host names (idna), and construct's
#: debugger (pdb). Together about 10 ms of every start. The forked gofers inherit them
#: deferred and never use them either (one inherited socket: no TLS, no host names).
DEFERRABLE = ("ssl", "hashlib", "hmac", "idna", "pdb")

_LOAD_LOCK = threading.RLock()
#: What the import system reads of a module it finds in sys.modules (`import x` of a module
#: already imported checks `x.__spec__._initializing`): answered without loading.
_PASSIVE = frozenset({"__spec__", "__name__", "__class__"})


class _DeferredModule(types.ModuleType):
    """A module whose code runs on first use: the first attribute read or write.

    Unlike importlib.util.LazyLoader, reading `__spec__` does not load it, so a second
    `import x` elsewhere (which reads it) keeps it deferred. The module object is the real
    one: its code runs in it, so every importer sees the same module once it is loaded.
    """

    def __getattribute__(self, attr: str) -> object:
        if attr in _PASSIVE:
            return object.__getattribute__(self, attr)
        _load(self)
        return getattr(self, attr)

    def __setattr__(self, attr: str, value: object) -> None:
        _load(self)
        setattr(self, attr, value)

    def __delattr__(self, attr: str) -> None:
        _load(self)
        delattr(self, attr)


def _load(module: types.ModuleType) -> None:
    with _LOAD_LOCK:
        if type(module) is not _DeferredModule:
            return  # another thread loaded it while this one waited
        spec = object.__getattribute__(module, "__spec__")
        object.__setattr__(module, "__class__", types.ModuleType)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            # As a failed import does: forget the module, so the next import retries.
            if sys.modules.get(spec.name) is module:
                del sys.modules[spec.name]
            raise


def defer_modules(*names: str) -> list[str]:
    """Make each named module (not yet imported) load on first use; returns those deferred.

    Call it before the imports that would load them. A name already imported, not found,
    inside a package, or whose loader cannot execute a module in place is left alone.
    A deferred module is read from disk when first used: a process that later confines
    itself away from the host's files and may use one must `load_deferred()` before.
    """
    deferred = []
    for name in names:
        if "." in name or name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            continue
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _DeferredModule
        sys.modules[name] = module
        deferred.append(name)
    return deferred


def load_deferred() -> list[str]:
    """Load every module still deferred (e.g. before confining the process); returns them."""
    loaded = []
    for name, module in list(sys.modules.items()):
        if type(module) is _DeferredModule:
            _load(module)
            loaded.append(name)
    return loaded


def exit_now(code: int) -> NoReturn:
    """Exit with `code` without tearing the interpreter down.

    Why: by now the gofers are stopped and the program's output went straight to the host's
    descriptors; what is left is unloading a few hundred modules and freeing every object,
    10-20 ms of every `runpsc do` that nobody can observe. Exit handlers still run and
    Python's buffered stdout and stderr are flushed first.
    """
    import atexit

    atexit._run_exitfuncs()  # what a normal exit runs first
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
