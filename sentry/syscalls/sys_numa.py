"""NUMA memory policy on a machine of one node (node 0): set_mempolicy, get_mempolicy,
mbind, migrate_pages, move_pages, set_mempolicy_home_node, with Linux's argument checks
(mm/mempolicy.c). Every page is on node 0, so policies change nothing but what
get_mempolicy reports.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel.pidns import proc_of
from sentry.kernel.table import Level, syscall
from sentry.mm.vma import PAGE, page_up
from vfs.creds import CAP_SYS_NICE

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL = 0, 1, 2, 3, 4
MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, MPOL_MAX = 5, 6, 7
MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING = 1 << 15, 1 << 14, 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING
MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED = 1, 2, 4
MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL = 1, 2, 4
MAX_NUMNODES = 1024  # CONFIG_NODES_SHIFT=10, as distribution kernels
NODE0 = 1  # the node mask of the only node
_NOTE = "one node: policies are checked and reported, every page is on node 0"


def _get_nodes(t: Task, nmask: int, maxnode: int) -> int:
    """get_nodes: the user's node mask of maxnode - 1 bits (EINVAL past a page of bits;
    bits past MAX_NUMNODES must be clear)."""
    maxnode = (maxnode - 1) & 0xFFFFFFFFFFFFFFFF  # unsigned: 0 wraps (EINVAL with a mask)
    if maxnode == 0 or not nmask:
        return 0
    if maxnode > PAGE * 8:
        raise SyscallError(errno.EINVAL)
    nbytes = (maxnode + 63) // 64 * 8
    bits = int.from_bytes(t.mem_read(nmask, nbytes), "little") & ((1 << maxnode) - 1)
    if bits >> MAX_NUMNODES:
        raise SyscallError(errno.EINVAL)
    return bits


def _check_mode(mode: int) -> tuple[int, int]:
    """sanitize_mpol_flags: (mode, flags) or EINVAL."""
    mode &= 0xFFFFFFFF
    flags = mode & MPOL_MODE_FLAGS
    mode &= ~MPOL_MODE_FLAGS
    if mode >= MPOL_MAX:
        raise SyscallError(errno.EINVAL)
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise SyscallError(errno.EINVAL)
    if flags & MPOL_F_NUMA_BALANCING and mode != MPOL_BIND:
        raise SyscallError(errno.EINVAL)
    return mode, flags


def _new_policy(mode: int, flags: int, nodes: int) -> tuple[int, int]:
    """mpol_new and mpol_set_nodemask on one node: (mode | flags, nodes) or EINVAL."""
    if mode == MPOL_DEFAULT:
        if nodes:
            raise SyscallError(errno.EINVAL)
        return 0, 0
    if not nodes:
        if mode == MPOL_PREFERRED and not flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            return MPOL_LOCAL, 0
        if mode != MPOL_LOCAL:
            raise SyscallError(errno.EINVAL)
    elif mode == MPOL_LOCAL:
        raise SyscallError(errno.EINVAL)
    if mode == MPOL_LOCAL:
        return MPOL_LOCAL | flags, 0
    if flags & MPOL_F_RELATIVE_NODES:
        return mode | flags, NODE0  # relative to the allowed nodes: always node 0
    if not nodes & NODE0:
        raise SyscallError(errno.EINVAL)
    return mode | flags, NODE0


@syscall("set_mempolicy", level=Level.PARTIAL, note=_NOTE)
def sys_set_mempolicy(t: Task, mode: int, nmask: int, maxnode: int, *_: int) -> int:
    """Implements Linux syscall set_mempolicy(2)."""
    mode, flags = _check_mode(mode)
    nodes = _get_nodes(t, nmask, maxnode)
    t.mempolicy = _new_policy(mode, flags, nodes)
    return 0


def _put_nodes(t: Task, nmask: int, maxnode: int, nodes: int) -> None:
    """copy_nodes_to_user: ALIGN(maxnode - 1, 64) bits, the rest cleared."""
    nbytes = (maxnode - 1 + 63) // 64 * 8
    if nbytes > PAGE:
        raise SyscallError(errno.EINVAL)
    if nbytes:
        t.mem_write(nmask, nodes.to_bytes(nbytes, "little"))


@syscall("get_mempolicy", level=Level.PARTIAL, note=_NOTE)
def sys_get_mempolicy(t: Task, policy: int, nmask: int, maxnode: int, addr: int,
                      flags: int, *_: int) -> int:
    """Implements Linux syscall get_mempolicy(2): the task's policy (MPOL_F_ADDR: the
    mapping's, the default as mbind records none), MPOL_F_NODE, the allowed nodes
    (MPOL_F_MEMS_ALLOWED)."""
    flags &= 0xFFFFFFFF
    maxnode &= 0xFFFFFFFFFFFFFFFF
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
        raise SyscallError(errno.EINVAL)
    if nmask and maxnode < 1:  # nr_node_ids
        raise SyscallError(errno.EINVAL)
    mode, nodes = t.mempolicy
    if mode & ~MPOL_MODE_FLAGS == MPOL_LOCAL:
        nodes = 0
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            raise SyscallError(errno.EINVAL)
        pval, nodes = 0, NODE0
    elif flags & MPOL_F_ADDR:
        # a mapping's own policy (none: mbind records none) or the default, not the task's
        if t.mm.find(addr) is None:
            raise SyscallError(errno.EFAULT)
        pval, nodes = 0, 0
    elif addr:
        raise SyscallError(errno.EINVAL)
    elif flags & MPOL_F_NODE:
        if mode & ~MPOL_MODE_FLAGS not in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            raise SyscallError(errno.EINVAL)
        pval = 0  # the next interleave node
    else:
        pval = mode
    if policy:
        t.mem_write(policy, struct.pack("<i", pval))
    if nmask:
        _put_nodes(t, nmask, maxnode, nodes)
    return 0


@syscall("mbind", level=Level.PARTIAL, note=_NOTE + "; per-range policies are not recorded")
def sys_mbind(t: Task, start: int, length: int, mode: int, nmask: int, maxnode: int,
              flags: int) -> int:
    """Implements Linux syscall mbind(2): do_mbind's checks (alignment, flags, MOVE_ALL
    needs CAP_SYS_NICE, EFAULT for a hole in the range)."""
    flags &= 0xFFFFFFFF
    mode, mflags = _check_mode(mode)
    if flags & ~(MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise SyscallError(errno.EINVAL)
    if flags & MPOL_MF_MOVE_ALL and not t.creds.has_cap(CAP_SYS_NICE):
        raise SyscallError(errno.EPERM)
    if start & (PAGE - 1):
        raise SyscallError(errno.EINVAL)
    if mode == MPOL_DEFAULT:
        flags &= ~MPOL_MF_STRICT
    end = page_up(start + length)
    if end < start:
        raise SyscallError(errno.EINVAL)
    nodes = _get_nodes(t, nmask, maxnode)
    _new_policy(mode, mflags, nodes)
    if end > start and not t.mm.is_mapped(start, end - start):
        raise SyscallError(errno.EFAULT)
    return 0


def _process(t: Task, pid: int) -> Task:
    pid = i32(pid)
    target = t if pid == 0 else proc_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    return target


@syscall("migrate_pages", level=Level.PARTIAL, note=_NOTE)
def sys_migrate_pages(t: Task, pid: int, maxnode: int, old: int, new: int, *_: int) -> int:
    """Implements Linux syscall migrate_pages(2): nothing to move between nodes (0 pages
    left behind); the new nodes must include node 0."""
    old_nodes = _get_nodes(t, old, maxnode)
    new_nodes = _get_nodes(t, new, maxnode)
    target = _process(t, pid)
    if target.creds.uid not in (t.creds.uid, t.creds.euid) and \
            not t.creds.has_cap(CAP_SYS_NICE):
        raise SyscallError(errno.EPERM)
    if new_nodes and not new_nodes & NODE0:
        raise SyscallError(errno.EINVAL)
    del old_nodes
    return 0


@syscall("move_pages", level=Level.PARTIAL, note=_NOTE)
def sys_move_pages(t: Task, pid: int, count: int, pages: int, nodes: int, status: int,
                   flags: int) -> int:
    """Implements Linux syscall move_pages(2): the status of each page is node 0, -EFAULT
    for an unmapped address, -ENOENT for a page never touched; a move to node 0 leaves
    the page where it is; another node is ENODEV."""
    flags &= 0xFFFFFFFF
    if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise SyscallError(errno.EINVAL)
    if flags & MPOL_MF_MOVE_ALL and not t.creds.has_cap(CAP_SYS_NICE):
        raise SyscallError(errno.EPERM)
    target = _process(t, pid)
    n = count & 0xFFFFFFFFFFFFFFFF
    if n > 1 << 20:
        raise SyscallError(errno.E2BIG)
    addrs = struct.unpack(f"<{n}Q", t.mem_read(pages, 8 * n)) if n else ()
    if nodes and n:
        for node in struct.unpack(f"<{n}i", t.mem_read(nodes, 4 * n)):
            if node < 0 or node >= MAX_NUMNODES or node != 0:
                raise SyscallError(errno.ENODEV)
    out = []
    for a in addrs:
        v = target.mm.find(a)
        if v is None:
            out.append(-errno.EFAULT)
            continue
        page = a & ~(PAGE - 1)
        try:
            resident = target.mm.mincore(page, PAGE)[0] & 1
        except SyscallError:
            resident = 0
        out.append(0 if resident else -errno.ENOENT)
    if n:
        t.mem_write(status, struct.pack(f"<{n}i", *out))
    return 0


@syscall("set_mempolicy_home_node", level=Level.PARTIAL, note=_NOTE)
def sys_set_mempolicy_home_node(t: Task, start: int, length: int, home_node: int,
                                flags: int, *_: int) -> int:
    """Implements Linux syscall set_mempolicy_home_node(2): mappings without a policy of
    their own (all of them, as mbind records none) are skipped, and a range where none
    had one is ENOENT, as Linux answers."""
    if start & (PAGE - 1) or flags & 0xFFFFFFFFFFFFFFFF:
        raise SyscallError(errno.EINVAL)
    if home_node & 0xFFFFFFFFFFFFFFFF >= MAX_NUMNODES or home_node != 0:
        raise SyscallError(errno.EINVAL)
    if page_up(start + length) < start:
        raise SyscallError(errno.EINVAL)
    raise SyscallError(errno.ENOENT)  # Linux's answer when no mapping had a policy
