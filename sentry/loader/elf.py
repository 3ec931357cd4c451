"""execve's loader: ELF (static, static-pie, dynamic via PT_INTERP) and `#!` scripts.

Why in the Sentry: the program and its interpreter are read through the VFS, never opened by
the host, and every mapping is recorded by the memory manager as it is made.
"""

from __future__ import annotations

import errno
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.elf.structs import ELFStructs

from sentry.errors import SyscallError
from sentry.mm.address_space import STACK_SIZE, MemoryManager
from sentry.mm.vma import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    page_down,
    page_up,
)

from .source import ExecFile, ExecSource

ELF_ET_DYN_BASE = 0x5555_5555_4000
MAX_SCRIPT_DEPTH = 5  # Linux: at most 5 nested #! interpreters
BINPRM_BUF_SIZE = 256
MAX_ARG_STRLEN = 32 * 4096

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 23, 25, 26, 31, 33, 51


def _host_auxv() -> dict[int, int]:
    """The host's auxv values the application should see unchanged (CPU capabilities)."""
    try:
        raw = open("/proc/self/auxv", "rb").read()
    except OSError:
        return {}
    vals = dict(struct.iter_unpack("<QQ", raw))
    return {k: vals[k] for k in (AT_HWCAP, AT_HWCAP2, AT_MINSIGSTKSZ, AT_CLKTCK) if k in vals}


_HOST_AUXV = _host_auxv()


@dataclass(slots=True)
class Image:
    """Where one ELF object landed."""

    base: int
    entry: int
    phdr: int
    phnum: int
    end: int
    interp: bytes | None = None
    exec_stack: bool = False


@dataclass(slots=True)
class Loaded:
    """The result of `load`: registers to start with and what auxv said."""

    entry: int
    sp: int
    auxv: dict[int, int] = field(default_factory=dict)
    argv: list[bytes] = field(default_factory=list)
    execfn: bytes = b""


#: What the loader reads of a file it maps (rather than copies) before parsing it: the
#: headers and the interpreter's name, nearly always; the rest is read only if not.
HEAD_SIZE = 64 << 10


async def _read_all(f: ExecFile, limit: int = -1) -> bytes:
    """The file (its first `limit` bytes, if given)."""
    chunks, off = [], 0
    while limit < 0 or off < limit:
        data = await f.fdesc.pread(1 << 20 if limit < 0 else min(1 << 20, limit - off), off)
        if not data:
            break
        chunks.append(data)
        off += len(data)
    return b"".join(chunks)


async def _release(f: ExecFile) -> None:
    """Drop the loader's reference to `f` (its mappings hold their own)."""
    if hasattr(f.fdesc, "dec_ref"):
        await f.fdesc.dec_ref()


async def _read_exec(f: ExecFile) -> tuple[bytes, bool]:
    """What `_map_elf` needs of `f`, and whether its segments may be mapped from the file
    itself (a donated goferfs file: a host descriptor to map) instead of copied: then
    only the head is read, or all of it when the headers or the interpreter's name lie
    beyond."""
    fn = getattr(f.fdesc, "mappable_fd", None)
    if fn is None or await fn() < 0 or f.size <= HEAD_SIZE:
        return await _read_all(f), False
    head = await _read_all(f, HEAD_SIZE)
    try:
        _, segs = _headers(head)
    except SyscallError:
        return await _read_all(f), False
    if any(s.p_type == "PT_INTERP" and s.p_offset + s.p_filesz > len(head) for s in segs):
        return await _read_all(f), True
    return head, True


def parse_shebang(head: bytes) -> tuple[bytes, bytes | None]:
    """Split a `#!` line into interpreter and optional single argument, as Linux does.

    Raises ENOEXEC for an empty interpreter.
    """
    line = head[2:].split(b"\n", 1)[0]
    line = line.replace(b"\t", b" ").strip(b" ")
    if not line:
        raise SyscallError(errno.ENOEXEC)
    interp, _, arg = line.partition(b" ")
    arg = arg.strip(b" ")
    return interp, (arg or None)


_ELF64: ELFStructs | None = None
PHDR_SIZE = 56  # sizeof(Elf64_Phdr)


def _elf64() -> ELFStructs:
    """pyelftools' structs for 64-bit little-endian ELF, built once per process.

    Why not `ELFFile`: execve needs the file header and the program headers only, and
    `elftools.elf.elffile` imports the section, DWARF, relocation and hash machinery (about
    15 ms of every `runpsc do`) and rebuilds every struct and parses the dynamic section of
    each file it opens (2-3 ms per program).
    """
    global _ELF64
    if _ELF64 is None:
        structs = ELFStructs(little_endian=True, elfclass=64)
        structs.create_basic_structs()
        structs.create_advanced_structs("ET_DYN", "EM_X86_64", "ELFOSABI_SYSV")
        _ELF64 = structs
    return _ELF64


def _headers(data: bytes) -> tuple:
    """The ELF header and program headers of an x86_64 executable, as Linux's loader checks
    them (ENOEXEC otherwise)."""
    try:
        # Like Linux's binfmt_elf, e_ident's class and byte order are not checked: an
        # x86_64 header is read as ELF64 little-endian, whatever they say.
        if len(data) < 64:
            raise SyscallError(errno.ENOEXEC)
        elf = _elf64()
        stream = io.BytesIO(data)
        h = struct_parse(elf.Elf_Ehdr, stream, 0)
        if h["e_machine"] != "EM_X86_64" or h["e_type"] not in ("ET_EXEC", "ET_DYN"):
            raise SyscallError(errno.ENOEXEC)
        # load_elf_phdrs: the entry size must be Elf64_Phdr's, the table at most 64 KiB.
        phnum = h["e_phnum"]
        if h["e_phentsize"] != PHDR_SIZE or not 1 <= phnum <= 65536 // PHDR_SIZE:
            raise SyscallError(errno.ENOEXEC)
        if h["e_phoff"] + phnum * PHDR_SIZE > len(data):
            raise SyscallError(errno.ENOEXEC)
        segs = [struct_parse(elf.Elf_Phdr, stream, h["e_phoff"] + i * PHDR_SIZE)
                for i in range(phnum)]
    except (ELFError, struct.error, ValueError) as e:
        raise SyscallError(errno.ENOEXEC, f"bad ELF: {e}") from None
    return h, segs


async def _map_elf(mm: MemoryManager, f: ExecFile, data: bytes, *, main: bool,
                   mapped: bool = False) -> Image:
    """Map `f`'s PT_LOAD segments: copies of `data` (the whole file), or, when `mapped`,
    private mappings of the file itself (`data` may then be only its head), the part of
    the last file page past the segment's file bytes zeroed, as Linux's padzero does."""
    h, segs = _headers(data)
    loads = [s for s in segs if s.p_type == "PT_LOAD"]
    if not loads:
        raise SyscallError(errno.ENOEXEC)
    lo = page_down(min(s.p_vaddr for s in loads))
    hi = page_up(max(s.p_vaddr + s.p_memsz for s in loads))
    if h["e_type"] == "ET_DYN":
        base = (ELF_ET_DYN_BASE if main else mm.unmapped_area(hi - lo)) - lo
    else:
        base = 0
    interp = None
    exec_stack = False
    for s in segs:
        if s.p_type == "PT_INTERP":
            interp = data[s.p_offset : s.p_offset + s.p_filesz].split(b"\0", 1)[0]
        elif s.p_type == "PT_GNU_STACK":
            exec_stack = bool(s.p_flags & 1)
    name = f.path
    origin = (f.dev, f.ino, getattr(f.fdesc, "vd", None))
    if mapped and any((base + s.p_vaddr - s.p_offset) % PAGE for s in loads):
        mapped = False  # (segments mmap could not map: copies, of the whole file)
        data = await _read_all(f)
    size = f.size if mapped else len(data)
    for s in loads:
        if s.p_filesz > s.p_memsz or s.p_offset + s.p_filesz > size:
            raise SyscallError(errno.ENOEXEC)
        prot = (PROT_READ if s.p_flags & 4 else 0) | (PROT_WRITE if s.p_flags & 2 else 0) | (
            PROT_EXEC if s.p_flags & 1 else 0
        )
        start = page_down(base + s.p_vaddr)
        end = page_up(base + s.p_vaddr + s.p_memsz)
        lead = base + s.p_vaddr - start
        # The file's pages, then the zero-filled rest (bss) as anonymous memory: the
        # copy keeps the file's identity and offset, so /proc/PID/maps reads as Linux's.
        file_end = min(end, page_up(base + s.p_vaddr + s.p_filesz)) if s.p_filesz else start
        if file_end > start and mapped:
            await mm.mmap(start, file_end - start, prot, MAP_PRIVATE, f.fdesc,
                          page_down(s.p_offset), fixed=True, name=name)
            tail = base + s.p_vaddr + s.p_filesz
            if s.p_memsz > s.p_filesz and tail < file_end:
                mm.stub.write_force(tail, bytes(file_end - tail))
        elif file_end > start:
            await mm.mmap(start, file_end - start, prot, MAP_PRIVATE | MAP_ANONYMOUS,
                          offset=page_down(s.p_offset), fixed=True, name=name, origin=origin)
        if end > file_end:
            await mm.mmap(file_end, end - file_end, prot, MAP_PRIVATE | MAP_ANONYMOUS,
                          fixed=True)
        if s.p_filesz and not mapped:
            mm.stub.write_force(start, data[s.p_offset - lead : s.p_offset + s.p_filesz])
    phdr = 0
    for s in segs:
        if s.p_type == "PT_PHDR":
            phdr = base + s.p_vaddr
    if not phdr:
        for s in loads:
            if s.p_offset <= h["e_phoff"] < s.p_offset + s.p_filesz:
                phdr = base + s.p_vaddr + (h["e_phoff"] - s.p_offset)
    return Image(base, base + h["e_entry"], phdr, h["e_phnum"], base + hi, interp, exec_stack)


def _build_stack(mm: MemoryManager, argv: list[bytes], envp: list[bytes], execfn: bytes,
                 auxv: list[tuple[int, int]], top: int) -> tuple[int, int, int]:
    """Lay out strings, AT_RANDOM bytes, auxv, envp, argv and argc below `top`.

    Returns (sp, address of the random bytes, address of the platform string) after
    filling auxv entries that point into the stack.
    """
    blob = bytearray()
    ptrs_argv, ptrs_env = [], []
    # highest first, as Linux: execfn at the top, then env strings, then argv strings
    strings = [*argv, *envp, execfn]
    total = sum(len(s) + 1 for s in strings)
    p = top - 8 - total
    str_base = p
    for s in strings:
        blob += s + b"\0"
    addrs = []
    q = str_base
    for s in strings:
        addrs.append(q)
        q += len(s) + 1
    ptrs_argv = addrs[: len(argv)]
    ptrs_env = addrs[len(argv) : len(argv) + len(envp)]
    execfn_addr = addrs[-1]
    platform = b"x86_64\0"
    plat_addr = (str_base - len(platform)) & ~0xF
    rand_addr = plat_addr - 16
    randbytes = os.urandom(16)
    aux = [(k, v) for k, v in auxv]
    aux += [(AT_RANDOM, rand_addr), (AT_PLATFORM, plat_addr), (AT_EXECFN, execfn_addr),
            (AT_NULL, 0)]
    words = 1 + len(argv) + 1 + len(envp) + 1 + 2 * len(aux)
    sp = (rand_addr - 8 * words) & ~0xF
    table = [len(argv), *ptrs_argv, 0, *ptrs_env, 0]
    for k, v in aux:
        table += [k, v]
    mm.stub.write(sp, struct.pack(f"<{len(table)}Q", *table))
    mm.stub.write(rand_addr, randbytes)
    mm.stub.write(plat_addr, platform)
    mm.stub.write(str_base, bytes(blob))
    return sp, rand_addr, plat_addr


async def load(mm: MemoryManager, source: ExecSource, path: bytes, argv: list[bytes],
               envp: list[bytes], *, uid: int = 0, gid: int = 0, euid: int = 0,
               egid: int = 0,
               ids_for: Callable[[ExecFile], tuple[int, int, int, int, bool]] | None = None
               ) -> Loaded:
    """Load `path` (an ELF or `#!` script) into the empty address space `mm`.

    The auxiliary vector's ids are `uid`..`egid` (AT_SECURE 0), or what `ids_for` says
    once the program is known: (uid, gid, euid, egid, secure) for the ELF file that runs
    (a script's interpreter), whose set-user-ID bits an execve honours.

    Raises SyscallError: ENOENT/EACCES from the source, ENOEXEC for what is not a loadable
    x86_64 ELF or script, ELOOP for scripts nested too deep, E2BIG for oversized arguments.
    """
    for s in (*argv, *envp):
        if len(s) >= MAX_ARG_STRLEN or b"\0" in s:
            raise SyscallError(errno.E2BIG if len(s) >= MAX_ARG_STRLEN else errno.EINVAL)
    execfn = path
    for _ in range(MAX_SCRIPT_DEPTH + 1):
        f = await source.open_exec(path)
        try:
            data, mapped = await _read_exec(f)
        except BaseException:
            await _release(f)
            raise
        if data[:2] == b"#!":
            await _release(f)
            interp, arg = parse_shebang(data[:BINPRM_BUF_SIZE])
            argv = [interp, *([arg] if arg else []), path, *argv[1:]]
            path = interp
            continue
        if data[:4] != b"\x7fELF":
            await _release(f)
            raise SyscallError(errno.ENOEXEC)
        break
    else:
        raise SyscallError(errno.ELOOP)
    secure = False
    try:
        if ids_for is not None:
            uid, gid, euid, egid, secure = ids_for(f)
        img = await _map_elf(mm, f, data, main=True, mapped=mapped)
    finally:
        await _release(f)
    entry, at_base = img.entry, 0
    if img.interp:
        fi = await source.open_exec(img.interp)
        try:
            idata, imapped = await _read_exec(fi)
            if idata[:4] != b"\x7fELF":
                raise SyscallError(errno.ELIBBAD)
            iimg = await _map_elf(mm, fi, idata, main=False, mapped=imapped)
        finally:
            await _release(fi)
        entry, at_base = iimg.entry, iimg.base
    mm.set_brk_start(img.end)
    stack_prot = PROT_READ | PROT_WRITE | (PROT_EXEC if img.exec_stack else 0)
    top = mm.stack_top
    await mm.mmap(top - STACK_SIZE, STACK_SIZE, stack_prot, MAP_PRIVATE | MAP_ANONYMOUS,
                  fixed=True, name=b"[stack]", growsdown=True)
    auxv = []
    if mm.vdso:
        auxv.append((AT_SYSINFO_EHDR, mm.vdso))
    if AT_MINSIGSTKSZ in _HOST_AUXV:
        auxv.append((AT_MINSIGSTKSZ, _HOST_AUXV[AT_MINSIGSTKSZ]))
    auxv += [
        (AT_HWCAP, _HOST_AUXV.get(AT_HWCAP, 0)),
        (AT_PAGESZ, 4096),
        (AT_CLKTCK, _HOST_AUXV.get(AT_CLKTCK, 100)),
        (AT_PHDR, img.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, img.phnum),
        (AT_BASE, at_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, img.entry),
        (AT_UID, uid),
        (AT_EUID, euid),
        (AT_GID, gid),
        (AT_EGID, egid),
        (AT_SECURE, int(secure)),
        (AT_HWCAP2, _HOST_AUXV.get(AT_HWCAP2, 0)),
    ]
    sp, rand_addr, plat_addr = _build_stack(mm, argv, envp, execfn, auxv, top)
    aux = dict(auxv)
    aux.update({AT_RANDOM: rand_addr, AT_PLATFORM: plat_addr})
    return Loaded(entry, sp, aux, argv, execfn)
