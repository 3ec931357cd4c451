"""execve(2) and execveat(2): argv and envp read from application memory, then
`Kernel.execve`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import ptrace
from sentry.kernel.table import Level, syscall
from sentry.kernel.task import PR_SET_DUMPABLE, READ_IMPLIES_EXEC

from .sys_file import i32, vfs_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task



MAX_ARG_STRLEN = 32 * 4096
MAX_ARGS_TOTAL = 2 << 20


def _strings(t: Task, addr: int) -> list[bytes]:
    if not addr:
        return []
    out, total = [], 0
    for p in t.read_pointers(addr):
        try:
            s = t.read_cstring(p, MAX_ARG_STRLEN)
        except SyscallError as e:  # copy_strings: a string past MAX_ARG_STRLEN is E2BIG
            raise SyscallError(errno.E2BIG if e.errno == errno.ENAMETOOLONG
                               else e.errno) from None
        total += len(s) + 1 + 8
        if total > MAX_ARGS_TOTAL:
            raise SyscallError(errno.E2BIG)
        out.append(s)
    return out


@syscall("execve")
async def sys_execve(t: Task, path: int, argv: int, envp: int, *_: int) -> int:
    """Implements Linux syscall execve(2): the program and its interpreter are read
    through the VFS; on failure the caller's image is untouched."""
    name = t.read_cstring(path)
    await _exec(t, name, _strings(t, argv), _strings(t, envp))
    return 0


async def _exec(t: Task, path: bytes, argv: list[bytes], envp: list[bytes]) -> None:
    """Run the new program; it starts dumpable again (a set*id made the old one not) and
    without the old address space's AIO contexts."""
    old_tid = t.tid
    await t.kernel.execve(t, path, argv, envp)
    t.prctl_state.pop(PR_SET_DUMPABLE, None)
    for c in t.aio_contexts.values():
        c.drop_polls()
    t.aio_contexts.clear()
    t.debugregs = [0] * 8  # flush_ptrace_hw_breakpoint
    t.personality &= ~READ_IMPLIES_EXEC  # set_personality_64bit
    await ptrace.after_exec(t, old_tid)  # PTRACE_EVENT_EXEC, or a traced thread's SIGTRAP



AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = 0x100, 0x1000


@syscall("execveat", level=Level.PARTIAL,
         note="the program is named by its path in the sandbox (AT_EXECFN and a script's "
              "interpreter see that path, not /dev/fd/N); a deleted file cannot be run")
async def sys_execveat(t: Task, dirfd: int, path: int, argv: int, envp: int, flags: int,
                       *_: int) -> int:
    """Implements Linux syscall execveat(2): a path relative to `dirfd`, or with
    AT_EMPTY_PATH the file `dirfd` itself (an O_PATH or ordinary fd of a regular file);
    AT_SYMLINK_NOFOLLOW makes a symlink ELOOP."""
    flags &= 0xFFFFFFFF
    name = t.read_cstring(path)
    if not name and not flags & AT_EMPTY_PATH:
        raise SyscallError(errno.ENOENT)
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise SyscallError(errno.EINVAL)
    fd = i32(dirfd)
    vfs, fs = vfs_of(t)
    d = None if fd == AT_FDCWD or name.startswith(b"/") else t.fdtable.get(fd)
    if d is not None:
        if d.vd is None:
            raise SyscallError(errno.EACCES if not name else errno.ENOTDIR)
        if name and not d.vd.dentry.inode.is_dir:
            raise SyscallError(errno.ENOTDIR)
        if not name and d.vd.dentry.inode.type != 0o100000:  # not a regular file
            raise SyscallError(errno.EACCES)
        base = vfs.path_of(fs, d.vd)
        if base.endswith(b" (deleted)"):
            raise SyscallError(errno.ENOENT)
        name = base if not name else base.rstrip(b"/") + b"/" + name
    if flags & AT_SYMLINK_NOFOLLOW:
        vd = await vfs.resolve(fs, t.creds, None, name, follow=False)
        if vd.dentry.inode.is_symlink:
            raise SyscallError(errno.ELOOP)
    await _exec(t, name, _strings(t, argv), _strings(t, envp))
    return 0
