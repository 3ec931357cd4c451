"""What keeps `runpsc do` quick to start: imports that cost less, and a quick exit.

Issue 7's budget is `runpsc do /bin/true` under 250 ms, and most of that time is Python
importing trio, click, p9, the VFS and the Sentry. These helpers trim what the imports do
that `runpsc do` never needs; each keeps the behaviour of the plain import.

- `glibc_sonames()`: ctypes.util.find_library answered directly for glibc's libraries
  (on Linux each call otherwise runs `ldconfig -p` in a child process).
- `defer_modules(...)`: standard-library modules that trio and pyelftools import but only
  use for TLS, DTLS, IDNA host names or a debugger (ssl, hashlib, hmac, idna, pdb) are
  loaded on first use instead of at import.
- `exit_now(code)`: leave without tearing the interpreter down.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterator

__all__ = ["DEFERRABLE", "defer_modules", "exit_now", "glibc_sonames", "load_deferred"]

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


def exit_now(code: int) -> None:
    """Exit with `code` without tearing the interpreter down.

    Why: by now the gofers are stopped and the program's output went straight to the host's
    descriptors; what is left is unloading a few hundred modules and freeing every object,
    10-20 ms of every `runpsc do` that nobody can observe. Exit handlers still run and
    Python's buffered stdout and stderr are flushed first.
    """
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
