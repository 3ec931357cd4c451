"""A cache for the code that attrs and dataclasses generate while `runpsc do` imports.

Why: trio's classes (attrs) and ours (dataclasses) get their `__init__`, `__eq__`,
`__repr__` ... by generating Python source and compiling it as each module is imported.
For `runpsc do /bin/true` that is about 200 small compilations, 20-30 ms of a 250 ms
budget, producing the same code every time. Like a .pyc does for a module, this cache keeps
their code objects on disk (`CACHE_PATH`, in `runtime/__pycache__/`).

Why it cannot change behaviour: an entry is keyed by a BLAKE2 digest of everything
`compile()` depends on (the source text, file name, mode, flags including the `__future__`
features inherited from the caller, optimisation level), and the file is named after the
interpreter's bytecode tag. A class whose generated source changed misses the cache and is
compiled as usual; a stale entry is never used. Sources that differ every run (attrs puts
a per-process hash into `__hash__`) simply miss.

`scripts/setup.sh` writes the cache (`python -m runtime.codecache`), as it compiles the
packages' bytecode; `runpsc do` only reads it, inside `cached_compiles()`, which replaces
`builtins.compile` and `builtins.exec` for source strings while it is active.
"""

from __future__ import annotations
import __future__

import builtins
import contextlib
import marshal
import os
import sys
from _blake2 import blake2b  # not hashlib: `runpsc do` defers that (runtime.startup)
from collections.abc import Iterator
from importlib.util import MAGIC_NUMBER
from typing import Any

__all__ = ["CACHE_PATH", "cached_compiles", "main", "warm"]

CACHE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                          f"codegen.{sys.implementation.cache_tag}.marshal")

#: The compiler flags a compile()/exec() inherits from its caller's code (CPython's
#: PyCF_MASK: the __future__ features). Obsolete ones (nested_scopes, generators) have no
#: effect and are not in it.
_FUTURE_MASK = 0
for _name in ("division", "absolute_import", "with_statement", "print_function",
              "unicode_literals", "barry_as_FLUFL", "generator_stop", "annotations"):
    _FUTURE_MASK |= getattr(__future__, _name).compiler_flag

_original_compile = builtins.compile
_original_exec = builtins.exec
#: digest -> marshalled code object (unmarshalled on use); None until first loaded.
_entries: dict[bytes, bytes] | None = None
#: What was compiled while recording (digest -> marshalled code), for `warm`.
_recorded: dict[bytes, bytes] | None = None


def _digest(source: str, filename: Any, mode: str, flags: int, optimize: int) -> bytes:
    key = repr((source, filename, mode, flags, optimize, MAGIC_NUMBER))
    return blake2b(key.encode("utf-8", "surrogatepass"), digest_size=20).digest()


def _lookup(source: str, filename: Any, mode: str, flags: int, optimize: int) -> Any:
    """The code object for these compile() arguments: cached, or compiled now."""
    if optimize == -1:
        optimize = sys.flags.optimize
    key = _digest(source, filename, mode, flags, optimize)
    blob = (_entries or {}).get(key)
    if blob is not None:
        try:
            return marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            pass  # a damaged entry: compile instead
    code = _original_compile(source, filename, mode, flags, True, optimize)
    if _recorded is not None:
        _recorded[key] = marshal.dumps(code)
    return code


def _compile(source: Any, filename: Any, mode: str, flags: int = 0, dont_inherit: bool = False,
             optimize: int = -1, **kwargs: Any) -> Any:
    """builtins.compile, answered from the cache for source strings compiled to code."""
    if not dont_inherit:  # what the real compile() would take from its caller's code
        flags |= sys._getframe(1).f_code.co_flags & _FUTURE_MASK
    if kwargs or not isinstance(source, str) or flags & ~_FUTURE_MASK:
        # bytes, an AST, ONLY_AST, type comments, top-level await ...: not cached.
        return _original_compile(source, filename, mode, flags, True, optimize, **kwargs)
    return _lookup(source, filename, mode, flags, optimize)


def _exec(source: Any, globals: Any = None, locals: Any = None, /, **kwargs: Any) -> Any:
    """builtins.exec, with source strings compiled through the cache (as "<string>")."""
    if globals is None:  # the real exec() runs in its caller's namespaces
        frame = sys._getframe(1)
        globals = frame.f_globals
        if locals is None:
            locals = frame.f_locals
        del frame
    elif locals is None:
        locals = globals
    if isinstance(source, str):
        flags = sys._getframe(1).f_code.co_flags & _FUTURE_MASK
        source = _lookup(source, "<string>", "exec", flags, -1)
    return _original_exec(source, globals, locals, **kwargs)


def _load(path: str) -> dict[bytes, bytes]:
    try:
        with open(path, "rb") as f:
            entries = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return entries


@contextlib.contextmanager
def cached_compiles(path: str = CACHE_PATH) -> Iterator[None]:
    """Within the block, compile()/exec() of source strings use the cache at `path`.

    Only for a single-threaded start-up phase (the replacement is process-wide). Nothing
    is written; a missing or damaged file means everything is compiled as usual.
    """
    global _entries
    if _entries is None:
        _entries = _load(path)
    saved = builtins.compile, builtins.exec
    builtins.compile, builtins.exec = _compile, _exec
    try:
        yield
    finally:
        builtins.compile, builtins.exec = saved


def warm(path: str = CACHE_PATH) -> int:
    """Import what `runpsc do` imports, recording what is compiled, and write the cache.

    Run in a fresh interpreter (`python -m runtime.codecache`): modules imported before it
    started are not recorded. Returns the number of entries written.
    """
    global _entries, _recorded
    _entries, _recorded = {}, {}
    try:
        with cached_compiles(path):
            from runtime.cmd_do import startup_imports

            startup_imports()
        recorded = _recorded
    finally:
        _recorded = None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(marshal.dumps(recorded))
    os.replace(tmp, path)
    return len(recorded)


def main() -> None:
    """`python -m runtime.codecache`: (re)write the cache for this interpreter."""
    n = warm()
    print(f"runtime.codecache: {n} entries in {CACHE_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
