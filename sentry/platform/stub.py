"""The stub program: its ELF bytes, generated here, and the seccomp filter it runs under.

Why generate it: no host path is needed to start an address space, and the stub contains
nothing but what the platform uses: an `int3` entry it never leaves on its own, a
`syscall; int3` gadget through which the Sentry injects host calls, and a scratch page.
"""

from __future__ import annotations

import struct

# Where the stub lives in every address space. Far below the host stack (which Linux puts
# within 16 GiB of the top) and below where the host places the vDSO for the default layout;
# the memory manager treats it as reserved.
STUB_ADDR = 0x7E00_0000_0000
PAGE = 4096
ENTRY = STUB_ADDR + 0xC0
GADGET = STUB_ADDR + 0xC8  # syscall; int3
GADGET_RETURN = GADGET + 2  # rip the kernel records for a call made at the gadget
SCRATCH = STUB_ADDR + PAGE  # one read-write page, used for injected calls' memory arguments
STUB_END = SCRATCH + PAGE

_CODE = {
    0xC0: bytes([0xCC, 0xEB, 0xFD]),  # entry: int3; jmp entry
    0xC8: bytes([0x0F, 0x05, 0xCC]),  # gadget: syscall; int3
}


def stub_elf() -> bytes:
    """The stub's complete ELF image: one R+X text page and one R+W scratch page."""
    ehdr = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF",
        2,  # ELFCLASS64
        1,  # little endian
        1,  # EV_CURRENT
        0,  # System V ABI
        0,
        2,  # ET_EXEC
        62,  # EM_X86_64
        1,
        ENTRY,
        64,  # e_phoff
        0,  # e_shoff
        0,  # flags
        64,  # e_ehsize
        56,  # e_phentsize
        2,  # e_phnum
        64,
        0,
        0,
    )
    text = struct.pack("<IIQQQQQQ", 1, 5, 0, STUB_ADDR, STUB_ADDR, PAGE, PAGE, PAGE)
    data = struct.pack("<IIQQQQQQ", 1, 6, PAGE, SCRATCH, SCRATCH, PAGE, PAGE, PAGE)
    image = bytearray(2 * PAGE)
    head = ehdr + text + data
    image[: len(head)] = head
    for off, code in _CODE.items():
        image[off : off + len(code)] = code
    return bytes(image)


# seccomp-BPF ------------------------------------------------------------------------------

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_RET_K = 0x06
_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000


def seccomp_filter(allowed: list[int]) -> bytes:
    """A BPF program allowing exactly `allowed` syscalls, and only from the gadget.

    Every application syscall is stopped by PTRACE_SYSEMU before seccomp runs, so this
    filter sees only what the Sentry injects; anything else (a platform bug that let the
    application's own call through) kills the stub.
    """
    insns: list[tuple[int, int, int, int]] = []
    n = len(allowed)
    # layout: 0 ld arch; 1 jeq arch; 2 ld ip_lo; 3 jeq; 4 ld ip_hi; 5 jeq; 6 ld nr;
    # 7..7+n-1 jeq nr -> allow; 7+n kill; 8+n allow
    kill = 7 + n
    allow = 8 + n

    def jeq(idx: int, k: int, target_true: int, target_false: int) -> tuple[int, int, int, int]:
        return (_JEQ_K, target_true - idx - 1, target_false - idx - 1, k)

    insns.append((_LD_W_ABS, 0, 0, 4))
    insns.append(jeq(1, _AUDIT_ARCH_X86_64, 2, kill))
    insns.append((_LD_W_ABS, 0, 0, 8))
    insns.append(jeq(3, GADGET_RETURN & 0xFFFFFFFF, 4, kill))
    insns.append((_LD_W_ABS, 0, 0, 12))
    insns.append(jeq(5, GADGET_RETURN >> 32, 6, kill))
    insns.append((_LD_W_ABS, 0, 0, 0))
    for i, nr in enumerate(allowed):
        insns.append(jeq(7 + i, nr, allow, 7 + i + 1))
    insns.append((_RET_K, 0, 0, _RET_KILL_PROCESS))
    insns.append((_RET_K, 0, 0, _RET_ALLOW))
    for code, jt, jf, _k in insns:
        assert 0 <= jt < 256 and 0 <= jf < 256, (code, jt, jf)
    return b"".join(struct.pack("<HBBI", *i) for i in insns)


_RET_TRACE = 0x7FF00000
_RET_USER_NOTIF = 0x7FC00000


_JGE_K = 0x35
_JA = 0x05


def _notif_tree(nrs: list[int]) -> list[tuple[int, int, int, int]]:
    """BPF deciding, for the number in A, NOTIF if it is one of sorted `nrs`, else TRACE:
    a binary search (a dozen instructions per call however long the list), its
    conditional jumps all short (0 or 1) and the long ones `ja` (32-bit offsets)."""
    if len(nrs) <= 3:
        n = len(nrs)
        out = [(_JEQ_K, n - i, 0, k) for i, k in enumerate(nrs)]  # -> the NOTIF return
        return out + [(_RET_K, 0, 0, _RET_TRACE), (_RET_K, 0, 0, _RET_USER_NOTIF)]
    mid = len(nrs) // 2
    left, right = _notif_tree(nrs[:mid]), _notif_tree(nrs[mid:])
    return [(_JGE_K, 0, 1, nrs[mid]), (_JA, 0, 0, len(left)), *left, *right]


def notif_filter(notified: list[int]) -> bytes:
    """The seccomp platform's BPF program (sentry/platform/usernotif.py), used instead of
    `seccomp_filter`: the application runs under PTRACE_CONT, so seccomp sees its calls.

    A call of `notified` made anywhere but at the gadget is a user notification; every
    other call (other ABIs included) is TRACEd: a PTRACE_EVENT_SECCOMP stop at which the
    Sentry either serves and skips it (an application call) or lets it run (a call it is
    injecting, which it made itself at the gadget). Nothing is ALLOWed: a call runs on
    the host only when the Sentry lets it; an application that jumps to the gadget is
    served like any other call. Calls at the gadget are never notified: an injected call
    must reach the host.
    """
    # 0 ld arch; 1 jeq; 2 ld ip_lo; 3 jeq; 4 ld ip_hi; 5 jeq; 6 ret TRACE; 7 ld nr; tree
    insns: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, 4),
        (_JEQ_K, 0, 4, _AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, 8),
        (_JEQ_K, 0, 3, GADGET_RETURN & 0xFFFFFFFF),
        (_LD_W_ABS, 0, 0, 12),
        (_JEQ_K, 0, 1, GADGET_RETURN >> 32),
        (_RET_K, 0, 0, _RET_TRACE),
        (_LD_W_ABS, 0, 0, 0),
        *_notif_tree(sorted(set(notified))),
    ]
    for code, jt, jf, _k in insns:
        assert 0 <= jt < 256 and 0 <= jf < 256, (code, jt, jf)
    return b"".join(struct.pack("<HBBI", *i) for i in insns)
