"""The Sentry's model of one application address space, and its host effects.

The Sentry owns the truth (the list of mappings, brk, what backs each range); the host owns
the pages. Every change is decided here and then applied to the stub with injected
syscalls at addresses the Sentry chose (always MAP_FIXED), so the two never disagree.
"""

from __future__ import annotations

import bisect
import contextvars
import errno
import os
import weakref
from dataclasses import replace
from typing import Any

from sentry.errors import SyscallError
from sentry.platform.ptrace import (
    NR_MADVISE,
    NR_MINCORE,
    NR_MMAP,
    NR_MPROTECT,
    NR_MREMAP,
    NR_MUNMAP,
    PtraceStub,
)
from sentry.platform.stub import SCRATCH
from vfs.memlimit import MemoryLimit

from .vma import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Vma,
    page_down,
    page_up,
)

#: The thread whose syscall the current trio task serves (set by the Kernel per task);
#: anything with `.mm` and `.stub` (a Task). Injections go through its stopped host thread.
CALLER: contextvars.ContextVar[Any] = contextvars.ContextVar("runpsc_mm_caller")

TASK_SIZE = 0x7FFF_FFFF_F000
MMAP_MIN_ADDR = 0x10000
STACK_SIZE = 8 << 20
#: Linux's gap below the stack for mmap_base (mm/util.c): the stack's rlimit and guard gap
#: plus the most the stack may be randomised (16 GiB on x86_64), at least 128 MiB more.
STACK_GAP = (128 << 20) + (16 << 30)
#: mmap_rnd_bits on x86_64: mmap_base is moved down by up to 2**28 pages (ASLR), so large
#: buffers in the first mappings do not reach past the top of the address space.
MMAP_RND_BITS = 28
_MADV_DONTNEED = 4
_MREMAP_MAYMOVE, _MREMAP_FIXED = 1, 2


def _memfd_of(file: Any) -> int:
    """The host memfd holding `file`'s data (tmpfs), or -1."""
    if file is None:
        return -1
    fd = getattr(file, "memfd", None)
    if fd is None:
        fd = getattr(getattr(file, "inode", None), "memfd", -1)
    return fd if isinstance(fd, int) else -1


async def _mappable_fd(file: Any) -> int:
    """A host descriptor a private mapping of `file` may map directly (a donated goferfs
    file's), or -1."""
    fn = getattr(file, "mappable_fd", None)
    return await fn() if fn is not None else -1


def committed(v: Vma) -> int:
    """Bytes a mapping commits in its address space: private writable memory (Linux's
    VM_ACCOUNT), and the copies the Sentry fills at mmap of a file (private mappings,
    shared ones of files without a memfd) or at exec (the program's segments), which are
    the host memory they look like, whatever their protection (page cache on Linux).
    Shared anonymous memory is charged once for every process mapping it (`SharedAnon`);
    a shared mapping of a tmpfs file maps the file's own pages, and a private one of a
    host file (`host_file`) commits what a private mapping of anonymous memory would."""
    if v.file is not None and not (v.host_shared or v.host_file) or v.origin is not None:
        return v.end - v.start
    return v.end - v.start if v.prot & PROT_WRITE and not v.shared else 0


class SharedAnon:
    """A shared anonymous mapping's memory (`Vma.anon`: one object kept by splits, mremap
    and fork). Its size is charged to the memory limit as "shmem" while any mapping of it
    lives, as shmem's one object is, however many processes share it."""

    __slots__ = ("__weakref__",)

    def __init__(self, memory: MemoryLimit | None, size: int) -> None:
        if memory is not None:
            memory.charge("shmem", size)
            weakref.finalize(self, memory.charge, "shmem", -size)


class MemoryManager:
    """Mappings of one address space (one stub). Not shared between tasks yet.

    `memory` is the sandbox's limit: what the mappings commit (`committed`) is charged to
    it as "anon", and a change that would pass it fails with ENOMEM before its host effect.
    """

    def pick_mmap_base(self, randomize: bool) -> None:
        """arch_pick_mmap_layout: where mmap starts, below the stack, moved down at random
        unless `randomize` is False (called again by an exec whose set-id bits clear
        ADDR_NO_RANDOMIZE, before anything is mapped)."""
        rnd = int.from_bytes(os.urandom(4), "little") & ((1 << MMAP_RND_BITS) - 1) \
            if randomize else 0
        self.mmap_base = min(TASK_SIZE - STACK_GAP - (rnd << 12),
                             self.stack_top - STACK_SIZE - (128 << 20))

    def __init__(self, stub: PtraceStub, memory: MemoryLimit | None = None, *,
                 randomize: bool = True) -> None:
        """`randomize`: mmap_base moved down at random (ASLR); not under personality's
        ADDR_NO_RANDOMIZE."""
        self.stub = stub
        self.memory = memory
        self.committed = 0  # bytes the mappings commit, charged to `memory`
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.reserved: list[tuple[int, int, str]] = []
        self.vdso = 0
        stack_top = 0
        for start, end, name in stub.host_maps():
            if name == "[stack]":
                stack_top = end
            elif start < TASK_SIZE:
                self.reserved.append((start, end, name))
                if name == "[vdso]":
                    self.vdso = start
        self.stack_top = stack_top or 0x7FFF_FF00_0000
        self.mmap_base = 0
        self.pick_mmap_base(randomize)
        self.brk_start = self.brk = 0
        self._files: dict[int, Any] = {}  # id -> file held by at least one mapping
        self.mapped = 0  # bytes in `vmas` (VmSize less vdso/vvar)
        self.peak = 0  # the most `mapped` ever was (VmPeak)
        self.lock_future = False  # mlockall(MCL_FUTURE): new mappings are locked

    def _injector(self) -> PtraceStub:
        """The host thread to inject through: the calling thread's own (stopped at the
        syscall being served), since another thread of this address space may be running;
        `self.stub` when no caller is set or the caller is not of this address space."""
        caller = CALLER.get(None)
        if caller is not None and caller.mm is self:
            return caller.stub
        return self.stub

    def fork(self, stub: PtraceStub) -> MemoryManager:
        """The child's copy of this list for a stub forked from ours (same layout)."""
        m = MemoryManager.__new__(MemoryManager)
        m.stub = stub
        m.vmas = [replace(v, locked=False) for v in self.vmas]  # locks are not inherited
        m._starts = list(self._starts)
        m.reserved = list(self.reserved)
        m.vdso, m.stack_top, m.mmap_base = self.vdso, self.stack_top, self.mmap_base
        m.brk_start, m.brk = self.brk_start, self.brk
        m.mapped, m.peak = self.mapped, self.peak
        m.memory, m.committed = self.memory, 0
        m._commit(self.committed)  # ENOMEM from fork, as Linux's strict accounting
        m._recount(self.committed)
        m._files = {k: f.inc_ref() for k, f in self._files.items()}
        m.lock_future = False
        return m

    # bookkeeping ---------------------------------------------------------------------------

    def _commit(self, grow: int) -> None:
        """ENOMEM unless `grow` more committed bytes fit in the sandbox's memory."""
        if self.memory is not None:
            self.memory.check(grow)

    def _recount(self, delta: int) -> None:
        self.committed += delta
        if self.memory is not None:
            self.memory.charge("anon", delta)

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """The indexes [i, j) of the mappings that overlap [start, end): `vmas` is sorted
        and without overlaps, so two bisections find them (no walk over every mapping on
        each mmap and munmap: a process has hundreds)."""
        starts = self._starts
        i = bisect.bisect_right(starts, start) - 1
        if i < 0 or self.vmas[i].end <= start:
            i += 1
        return i, max(i, bisect.bisect_left(starts, end))

    def committed_in(self, start: int, end: int, prot: int | None = None) -> int:
        """What [start, end) commits now, or with protection `prot`."""
        i, j = self._span(start, end)
        return sum(committed(v.slice(max(v.start, start), min(v.end, end)) if prot is None
                             else replace(v.slice(max(v.start, start), min(v.end, end)),
                                          prot=prot))
                   for v in self.vmas[i:j])

    def _insert(self, vma: Vma) -> None:
        i = bisect.bisect_left(self._starts, vma.start)
        self.vmas.insert(i, vma)
        self._starts.insert(i, vma.start)
        self.mapped += vma.end - vma.start
        self.peak = max(self.peak, self.mapped)
        self._recount(committed(vma))

    def _remove_range(self, start: int, end: int) -> list[Vma]:
        """Drop [start, end) from the list, splitting mappings at the edges."""
        i, j = self._span(start, end)
        if i == j:
            return []
        vmas = self.vmas
        removed = []
        edges: list[Vma] = []  # what is left of the first and last (the list stays sorted)
        for v in vmas[i:j]:
            if v.start < start:
                edges.append(v.slice(v.start, start))
            if v.end > end:
                edges.append(v.slice(end, v.end))
            removed.append(v.slice(max(v.start, start), min(v.end, end)))
        self.vmas = vmas[:i] + edges + vmas[j:]
        self._starts = self._starts[:i] + [v.start for v in edges] + self._starts[j:]
        self.mapped -= sum(v.end - v.start for v in removed)
        self._recount(-sum(committed(v) for v in removed))
        return removed

    def find(self, addr: int) -> Vma | None:
        """The mapping containing `addr`, if any."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.vmas[i].end > addr:
            return self.vmas[i]
        return None

    def shared_key(self, addr: int) -> tuple[tuple[str, int], int] | None:
        """What a shared futex at `addr` is keyed by: the memory object of a shared
        mapping (a file's inode, a System V segment, a shared anonymous mapping) and the
        offset in it, the same in every process mapping it; None for private memory."""
        v = self.find(addr)
        if v is None or not v.shared:
            return None
        off = v.offset + (addr - v.start)
        if v.file is None:
            return None if v.anon is None else (("anon", id(v.anon)), off)
        ident = getattr(v.file, "seg", None) or getattr(v.file, "inode", None) or v.file
        return ("file", id(ident)), off

    def _overlaps(self, start: int, end: int, *, reserved_only: bool = False) -> bool:
        for s, e, _ in self.reserved:
            if s < end and start < e:
                return True
        if reserved_only:
            return False
        i = bisect.bisect_right(self._starts, start) - 1
        i = max(i, 0)
        for v in self.vmas[i:]:
            if v.start >= end:
                break
            if v.end > start:
                return True
        return False

    def _fully_mapped(self, start: int, end: int) -> bool:
        pos = start
        for v in self.vmas:
            if v.end <= pos:
                continue
            if v.start > pos:
                return False
            pos = v.end
            if pos >= end:
                return True
        return pos >= end

    def host_area(self, addr: int) -> bool:
        """Whether `addr` is in one of the host's own read-only areas of the address space
        (vdso, vvar), which a debugger may read (/proc/PID/mem, PTRACE_PEEKDATA)."""
        return any(s <= addr < e and name in ("[vdso]", "[vvar]", "[vvar_vclock]")
                   for s, e, name in self.reserved)

    def is_mapped(self, addr: int, length: int) -> bool:
        """True if every byte of [addr, addr+length) is in an application mapping."""
        return length <= 0 or self._fully_mapped(page_down(addr), page_up(addr + length))

    def accessible(self, addr: int, length: int, prot: int) -> int:
        """How many bytes from `addr` (up to `length`) lie in consecutive mappings that
        allow `prot`: where a copy to or from the application stops at a fault, so that a
        read or write can move that much and return a short count, as Linux does."""
        pos, end = addr, addr + length
        while pos < end:
            v = self.find(pos)
            if v is not None and v.prot & prot == prot:
                pos = v.end
                continue
            # the host's own read-only areas (vdso, vvar) can be read from
            span = next((e for s, e, _ in self.reserved if s <= pos < e), None)
            if v is not None or span is None or prot & ~PROT_READ:
                break
            pos = span
        return min(pos, end) - addr

    def unmapped_area(self, length: int, hint: int = 0) -> int:
        """Pick a free range: `hint` if it is free, else top-down below mmap_base (ENOMEM)."""
        if hint:
            hint = page_down(hint)
            if hint >= MMAP_MIN_ADDR and hint + length <= TASK_SIZE and not self._overlaps(
                hint, hint + length
            ):
                return hint
        # Busy ranges from the top down: the (sorted) mappings below mmap_base merged with
        # the host's few reserved areas, without building and sorting a list of them all.
        top = self.mmap_base
        vmas = self.vmas
        i = bisect.bisect_left(self._starts, top) - 1
        res = sorted([(s, e) for s, e, _ in self.reserved if s < top])  # (a list: no generator frame per area)
        r = len(res) - 1
        while i >= 0 or r >= 0:
            if r < 0 or i >= 0 and vmas[i].start > res[r][0]:
                s, e = vmas[i].start, vmas[i].end
                i -= 1
            else:
                s, e = res[r]
                r -= 1
            if s >= top:
                continue
            if e <= top and top - e >= length:
                return top - length
            top = min(top, s)
        if top - length >= MMAP_MIN_ADDR:
            return top - length
        raise SyscallError(errno.ENOMEM)

    def _host(self, nr: int, *args: int) -> int:
        r = self._injector().inject(nr, *args)
        if r < 0:
            raise SyscallError(-r)
        return r

    # operations ----------------------------------------------------------------------------

    async def mmap(self, addr: int, length: int, prot: int, flags: int, file: Any = None,
                   offset: int = 0, *, name: bytes = b"", fixed: bool = False,
                   noreplace: bool = False, growsdown: bool = False,
                   origin: tuple[int, int, Any] | None = None) -> int:
        """Map [addr, addr+length) (or a free range) as Linux's mmap would; returns start.

        Private file mappings are filled now from `file` (a vfs FileDescription with
        `pread`), shared ones are filled and written back by `msync`/`munmap`/`release`.
        """
        length = page_up(length)
        if length == 0 or length > TASK_SIZE:
            raise SyscallError(errno.EINVAL if length == 0 else errno.ENOMEM)
        shared = flags & 3 in (MAP_SHARED, 3)
        if fixed or noreplace:
            if addr & (PAGE - 1) or addr < MMAP_MIN_ADDR and addr != 0:
                raise SyscallError(errno.EINVAL if addr & (PAGE - 1) else errno.EPERM)
            if addr + length > TASK_SIZE:
                raise SyscallError(errno.ENOMEM)
            if self._overlaps(addr, addr + length, reserved_only=True):
                raise SyscallError(errno.ENOMEM)
            if noreplace and self._overlaps(addr, addr + length):
                raise SyscallError(errno.EEXIST)
            start = addr
        else:
            start = self.unmapped_area(length, addr)
        memfd = _memfd_of(file) if shared else -1
        hostfd = await _mappable_fd(file) if file is not None and not shared else -1
        self._commit(committed(Vma(start, start + length, prot, shared, file,
                                   host_shared=memfd >= 0, host_file=hostfd >= 0,
                                   origin=origin))
                     + (length if shared and file is None else 0)
                     - self.committed_in(start, start + length))
        old = self._remove_range(start, start + length)
        await self.writeback(old)
        if memfd >= 0:
            r = self._injector().map_host_fd(memfd, start, length, prot,
                                             MAP_SHARED | MAP_FIXED, offset)
            if r < 0:
                raise SyscallError(-r)
        elif hostfd >= 0:
            r = self._injector().map_host_fd(hostfd, start, length, prot,
                                             MAP_PRIVATE | MAP_FIXED | flags & MAP_POPULATE,
                                             offset)
            if r < 0:
                raise SyscallError(-r)
        else:
            host_flags = MAP_FIXED | MAP_ANONYMOUS
            host_flags |= MAP_SHARED if shared and file is None else MAP_PRIVATE
            host_flags |= flags & MAP_POPULATE
            self._host(NR_MMAP, start, length, prot, host_flags, (1 << 64) - 1, 0)
        vma = Vma(start, start + length, prot, shared, file, offset, name, growsdown,
                  host_shared=memfd >= 0, host_file=hostfd >= 0, origin=origin,
                  locked=self.lock_future,
                  anon=SharedAnon(self.memory, length) if shared and file is None else None)
        if file is not None:
            if id(file) not in self._files:
                self._files[id(file)] = file.inc_ref()
            if memfd < 0 and hostfd < 0:
                await self._fill(vma, start, start + length)
        self._insert(vma)
        await self._drop_unused_files(old)
        return start

    async def _fill(self, vma: Vma, start: int, end: int) -> None:
        """Copy file bytes into [start, end) of a file mapping (zeros past EOF)."""
        off = vma.offset + (start - vma.start)
        want = end - start
        data = b""
        while len(data) < want:
            chunk = await vma.file.pread(want - len(data), off + len(data))
            if not chunk:
                break
            data += chunk
        if data:
            self.stub.write_force(start, data)

    async def _drop_unused_files(self, removed: list[Vma] | None = None) -> None:
        """Release the reference on each file no mapping uses any more (after `removed`
        went, when given: none of them a file's, nothing to do)."""
        if not self._files or removed is not None and all(v.file is None for v in removed):
            return
        used = {id(v.file) for v in self.vmas if v.file is not None}
        for key in [k for k in self._files if k not in used]:
            f = self._files.pop(key)
            try:
                await f.dec_ref()
            except OSError:
                pass

    async def writeback(self, vmas: list[Vma]) -> None:
        """Write shared file mappings' pages back to their files: those of files opened for
        writing only (no other can have changed, see sys_mprotect), whatever the mapping's
        protection now (a write-only page is written, as on Linux)."""
        for v in vmas:
            if v.shared and v.file is not None and not v.host_shared and v.file.writable:
                try:
                    data = self.stub.read_force(v.start, v.end - v.start)
                    size = (await v.file.stat()).size
                    n = max(0, min(len(data), size - v.offset))
                    if n:
                        await v.file.pwrite(data[:n], v.offset)
                except OSError:
                    pass

    async def munmap(self, addr: int, length: int) -> None:
        """Implements munmap: unmapping nothing is fine; bad alignment is EINVAL."""
        if addr & (PAGE - 1) or length == 0 or addr + length > TASK_SIZE:
            raise SyscallError(errno.EINVAL)
        end = page_up(addr + length)
        parts = self._remove_range(addr, end)
        if not parts:
            return
        await self.writeback(parts)
        for v in parts:
            self._host(NR_MUNMAP, v.start, v.end - v.start)
        await self._drop_unused_files(parts)

    # locking (mlock): recorded per mapping; the host's pages are not pinned ---------------

    def locked_bytes(self, start: int = 0, end: int = TASK_SIZE) -> int:
        """The bytes of [start, end) in locked mappings (VmLck over the whole space)."""
        return sum(min(v.end, end) - max(v.start, start) for v in self.vmas
                   if v.locked and v.end > start and v.start < end)

    def total_bytes(self) -> int:
        """Every mapping's size (Linux's total_vm, which mlockall checks the limit with)."""
        return sum(v.end - v.start for v in self.vmas) + sum(e - s for s, e, _ in self.reserved)

    def set_locked(self, start: int, end: int, on: bool) -> None:
        """Lock or unlock [start, end) (page aligned); ENOMEM unless all of it is mapped."""
        if end <= start:
            return
        if not self._fully_mapped(start, end):
            raise SyscallError(errno.ENOMEM)
        for v in self._remove_range(start, end):
            v.locked = on
            self._insert(v)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """Implements mprotect: ENOMEM unless every page of the range is mapped."""
        if addr & (PAGE - 1) or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x3000000):
            raise SyscallError(errno.EINVAL)
        growsdown = prot & 0x1000000
        prot &= 7
        end = page_up(addr + length)
        if end == addr:
            return
        if not self._fully_mapped(addr, end):
            raise SyscallError(errno.ENOMEM)
        if growsdown:
            v = self.find(addr)
            if v and v.growsdown:
                addr = v.start
        self._commit(self.committed_in(addr, end, prot) - self.committed_in(addr, end))
        parts = self._remove_range(addr, end)
        for v in parts:
            v.prot = prot
            self._insert(v)
        self._host(NR_MPROTECT, addr, end - addr, prot)

    async def mremap(self, old: int, old_size: int, new_size: int, flags: int,
                     new_addr: int = 0) -> int:
        """Implements mremap for one mapping: shrink, grow in place, or move."""
        if old & (PAGE - 1) or flags & ~(_MREMAP_MAYMOVE | _MREMAP_FIXED):
            raise SyscallError(errno.EINVAL)
        if flags & _MREMAP_FIXED and not flags & _MREMAP_MAYMOVE:
            raise SyscallError(errno.EINVAL)
        old_size, new_size = page_up(old_size), page_up(new_size)
        if new_size == 0:
            raise SyscallError(errno.EINVAL)
        v = self.find(old)
        if v is None or old_size == 0 or v.end < old + old_size:
            raise SyscallError(errno.EFAULT)
        if flags & _MREMAP_FIXED:
            if new_addr & (PAGE - 1) or self._overlaps(new_addr, new_addr + new_size,
                                                       reserved_only=True):
                raise SyscallError(errno.EINVAL)
            await self.munmap(new_addr, new_size)
            dest = new_addr
        elif new_size <= old_size:
            if new_size < old_size:
                await self.munmap(old + new_size, old_size - new_size)
            return old
        elif old + new_size <= TASK_SIZE and not self._overlaps(old + old_size, old + new_size):
            dest = old
        elif flags & _MREMAP_MAYMOVE:
            dest = self.unmapped_area(new_size)
        else:
            raise SyscallError(errno.ENOMEM)
        moved = v.slice(old, old + old_size)
        self._commit(committed(v.slice(old, old + new_size)) - committed(moved))
        if dest == old:
            self._host(NR_MREMAP, old, old_size, new_size, 0, 0)
        else:
            self._host(NR_MREMAP, old, old_size, new_size,
                       _MREMAP_MAYMOVE | _MREMAP_FIXED, dest)
            self._remove_range(old, old + old_size)
        self._remove_range(dest, dest + new_size)
        moved.start, moved.end = dest, dest + new_size
        self._insert(moved)
        if (moved.file is not None and not (moved.host_shared or moved.host_file)
                and new_size > old_size):
            await self._fill(moved, dest + old_size, dest + new_size)
        return dest

    def set_brk_start(self, addr: int) -> None:
        """Where the heap begins (the page after the program's last segment)."""
        self.brk_start = self.brk = page_up(addr)

    async def set_brk(self, new: int) -> int:
        """Implements brk: grow or shrink the heap; on failure the old break is returned."""
        if new < self.brk_start:
            return self.brk
        old_end, new_end = page_up(self.brk), page_up(new)
        if new_end > old_end:
            if self._overlaps(old_end, new_end) or new_end > self.mmap_base:
                return self.brk
            try:
                await self.mmap(old_end, new_end - old_end, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, fixed=True, name=b"[heap]")
            except OSError as e:
                if e.errno != errno.ENOMEM:
                    raise
                return self.brk
        elif new_end < old_end:
            await self.munmap(new_end, old_end - new_end)
        self.brk = new
        return new

    async def madvise(self, addr: int, length: int, advice: int) -> None:
        """Implements madvise: DONTNEED drops pages (file copies are refilled), others are
        hints the host may take."""
        if addr & (PAGE - 1):
            raise SyscallError(errno.EINVAL)
        end = page_up(addr + length)
        if advice == _MADV_DONTNEED:
            if not self._fully_mapped(addr, end):
                raise SyscallError(errno.ENOMEM)
            self._host(NR_MADVISE, addr, end - addr, advice)
            for v in self.vmas:
                if (v.file is not None and not v.shared and not v.host_file
                        and v.start < end and v.end > addr):
                    await self._fill(v, max(v.start, addr), min(v.end, end))
        elif advice in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21):
            if end > addr and not self._fully_mapped(addr, end):
                raise SyscallError(errno.ENOMEM)
        else:
            raise SyscallError(errno.EINVAL)

    async def msync(self, addr: int, length: int, flags: int) -> None:
        """Implements msync: write back shared file mappings in the range."""
        if addr & (PAGE - 1) or flags & ~7 or flags & 5 == 5:
            raise SyscallError(errno.EINVAL)
        end = page_up(addr + length)
        if not self._fully_mapped(addr, end):
            raise SyscallError(errno.ENOMEM)
        await self.writeback(
            [v.slice(max(v.start, addr), min(v.end, end)) for v in self.vmas
             if v.start < end and v.end > addr]
        )

    def mincore(self, addr: int, length: int) -> bytes:
        """Residency of each page in [addr, addr+length), from the host."""
        if addr & (PAGE - 1):
            raise SyscallError(errno.EINVAL)
        end = page_up(addr + length)
        if not self._fully_mapped(addr, end):
            raise SyscallError(errno.ENOMEM)
        out = b""
        step = PAGE * PAGE  # one scratch page of vector per call
        for s in range(addr, end, step):
            n = min(step, end - s)
            self._host(NR_MINCORE, s, n, SCRATCH)
            out += self.stub.read(SCRATCH, n // PAGE)
        return out

    async def release(self) -> None:
        """Write back shared file mappings and drop file references (at exit)."""
        await self.writeback(self.vmas)
        self.vmas, self._starts = [], []
        self.mapped = 0
        self._recount(-self.committed)
        await self._drop_unused_files()
