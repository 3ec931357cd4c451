"""How a syscall fails: `SyscallError(errno)`, an OSError the dispatcher answers as ``-errno``.

Why an OSError subclass rather than a second kind of failure: the VFS fails with plain
``OSError(errno, message)`` (`vfs.errors.error`), and the dispatcher turns every OSError
that carries an errno into ``-errno``, so a handler never translates between the two.
`SyscallError` only fills in the message (`os.strerror`) and says, where it is raised,
that the failure is the application's answer rather than a Sentry fault. It lives at the
bottom of the Sentry so that the platform, memory, loader and kernel layers can raise it
without importing the syscall layer.
"""

from __future__ import annotations

import os

__all__ = ["SyscallError"]


class SyscallError(OSError):
    """A syscall failure the application sees as ``-errno``; raise it from handlers."""

    errno: int  # always set, unlike a bare OSError's

    def __init__(self, err: int, msg: str = "") -> None:
        super().__init__(err, msg or os.strerror(err))
