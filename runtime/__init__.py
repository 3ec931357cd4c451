"""What users touch: the `runpsc` command line and the Python API for sandboxes. Nothing in
runpsc imports this package.

The Python API (docs/api.md), imported lazily so that `runpsc do` pays nothing for it:

- `run(argv, *, mounts, network, publish, timeout, memory, env, cwd, stdin, check, tmpfs,
  tls)`: one program in a fresh sandbox, a `subprocess.CompletedProcess` with its output
  (`runtime.api`).
- `Sandbox(*, mounts, network, publish, memory, env, cwd, tmpfs, tls)`: a context manager
  keeping one sandbox across `exec`, `write_file` and `read_file` calls; usable from any
  thread, so from asyncio with `asyncio.to_thread` (`runtime.api`).
- `open_sandbox(...)`: the same for trio, in this process: an async context manager giving
  an `AsyncSandbox` whose methods are awaited (`runtime.session`).
- `Volume`: a host directory to mount (``Volume.parse("HOST:SANDBOX[:ro]")``); `Mount`: a
  running gofer's export reached by address (``Mount.parse("9p:tls:HOST:PORT,aname=N:/data")``,
  its TLS material a `p9.TLSClientConfig` passed as `tls`);
  `Publish`: a host port forwarded to a sandbox port (``Publish.parse("8080:80")``);
  `SandboxError`: a sandbox that could not boot or a program that could not start
  (`.code`: 125, 126 or 127 as a shell reports them) (`runtime.sandbox`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.api import Sandbox, run
    from runtime.network import Publish
    from runtime.sandbox import Mount, SandboxError, Volume
    from runtime.session import AsyncSandbox, open_sandbox

__all__ = ["AsyncSandbox", "Mount", "Publish", "Sandbox", "SandboxError", "Volume",
           "open_sandbox", "run"]

#: Where each export lives (imported on first use).
_EXPORTS = {
    "run": "runtime.api", "Sandbox": "runtime.api",
    "open_sandbox": "runtime.session", "AsyncSandbox": "runtime.session",
    "Volume": "runtime.sandbox", "Mount": "runtime.sandbox", "SandboxError": "runtime.sandbox",
    "Publish": "runtime.network",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
