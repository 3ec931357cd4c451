"""What a process's execve loaded, recorded for /proc (exe, cmdline, environ).

Why addresses and not only strings: /proc/PID/cmdline and environ are read from the
process's memory on Linux (mm->arg_start … env_end), so a program that rewrites its
argv in place (setproctitle) shows the new title. The strings are kept as the fallback
for a process whose memory can no longer be read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

AT_ENTRY = 9


@dataclass
class ProcessImage:
    """The executable (its path at exec time, and its VFS dentry when the VFS served it,
    so /proc/PID/exe follows renames and shows " (deleted)"), argv and envp, and where
    their strings lie in the new stack."""

    exe: bytes
    exe_vd: Any = None
    argv: list[bytes] = field(default_factory=list)
    envp: list[bytes] = field(default_factory=list)
    arg_start: int = 0
    arg_end: int = 0
    env_start: int = 0
    env_end: int = 0
    auxv: dict[int, int] = field(default_factory=dict)  # /proc/PID/auxv


class RecordingSource:
    """An ExecSource that remembers what the loader opened (scripts, the program, its
    interpreter), so the kernel knows which file is the process's executable."""

    def __init__(self, inner: Any, first: tuple[bytes, Any] | None = None) -> None:
        self.inner = inner
        self.opened: list[tuple[bytes, Any]] = []
        #: (path, file) opened before the load began, handed out by the first open of path
        self._first = first

    @classmethod
    async def opening(cls, inner: Any, path: bytes) -> RecordingSource:
        """A source with `path` opened already: a program that is missing or may not be
        executed fails before anything is made for the new image (an execvp or a shell
        tries every directory of $PATH, and most of those tries fail)."""
        return cls(inner, (path, await inner.open_exec(path)))

    async def open_exec(self, path: bytes) -> Any:
        if self._first is not None and self._first[0] == path:
            f, self._first = self._first[1], None
        else:
            f = await self.inner.open_exec(path)
        self.opened.append((f.path, getattr(f.fdesc, "vd", None)))
        return f

    async def release_unused(self) -> None:
        """Drop the file opened first if the load never took it (it failed before)."""
        if self._first is not None:
            f, self._first = self._first[1], None
            if hasattr(f.fdesc, "dec_ref"):
                await f.fdesc.dec_ref()


def image_of(loaded: Any, source: RecordingSource, envp: list[bytes], stub: Any) -> ProcessImage:
    """The ProcessImage of a successful load. The executable is the last file opened, or
    the one before it when an ELF interpreter was loaded (the entry point is then not
    AT_ENTRY); `#!` scripts come before both, so for a script it is the interpreter, as
    on Linux."""
    opened = source.opened
    main = -2 if loaded.entry != loaded.auxv.get(AT_ENTRY, loaded.entry) and len(opened) > 1 \
        else -1
    path, vd = opened[main] if opened else (loaded.execfn, None)
    img = ProcessImage(path, vd, list(loaded.argv), list(envp), auxv=dict(loaded.auxv))
    argc, envc = len(loaded.argv), len(envp)
    try:
        words = struct.unpack(f"<{argc + envc + 3}Q", stub.read(loaded.sp, 8 * (argc + envc + 3)))
    except (OSError, struct.error):
        return img
    if words[0] != argc:
        return img
    argp, envpp = words[1:1 + argc], words[2 + argc:2 + argc + envc]
    if argc:
        img.arg_start, img.arg_end = argp[0], argp[-1] + len(loaded.argv[-1]) + 1
    if envc:
        img.env_start, img.env_end = envpp[0], envpp[-1] + len(envp[-1]) + 1
    if not argc:
        img.arg_start = img.arg_end = img.env_start
    if not envc:
        img.env_start = img.env_end = img.arg_end
    return img
