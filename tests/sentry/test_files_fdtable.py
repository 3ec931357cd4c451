"""FDTable: Linux's fd allocation, dup2 replacement, close-on-exec and fork reference rules."""

import errno

import pytest

from sentry.errors import SyscallError
from sentry.kernel.fdtable import FDTable


class Desc:
    """A stand-in open file description that only counts references."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def __repr__(self) -> str:
        return f"Desc({self.name})"


def errno_of(fn, *args, **kw) -> int:
    with pytest.raises(SyscallError) as info:
        fn(*args, **kw)
    return info.value.errno


def test_lowest_free_fd_is_allocated():
    t = FDTable()
    a, b, c = Desc("a"), Desc("b"), Desc("c")
    assert [t.install(a), t.install(b), t.install(c)] == [0, 1, 2]
    assert t.remove(1) is b
    assert t.install(Desc("d")) == 1
    assert t.install(Desc("e")) == 3
    assert t.install(Desc("f"), min_fd=10) == 10
    assert t.install(Desc("g")) == 4
    assert t.fds() == [0, 1, 2, 3, 4, 10]


def test_get_and_remove_bad_fd():
    t = FDTable()
    assert errno_of(t.get, 0) == errno.EBADF
    assert errno_of(t.get, -1) == errno.EBADF
    assert errno_of(t.remove, 5) == errno.EBADF
    assert errno_of(t.get_cloexec, 3) == errno.EBADF
    assert errno_of(t.set_cloexec, 3, True) == errno.EBADF


def test_limit_gives_emfile_and_einval():
    t = FDTable(limit=3)
    for i in range(3):
        assert t.install(Desc(str(i))) == i
    assert errno_of(t.install, Desc("x")) == errno.EMFILE
    assert errno_of(t.install, Desc("x"), min_fd=3) == errno.EINVAL
    assert errno_of(t.install, Desc("x"), min_fd=-1) == errno.EINVAL
    assert errno_of(t.install_at, 3, Desc("x")) == errno.EBADF
    assert errno_of(t.install_at, -1, Desc("x")) == errno.EBADF


def test_install_at_replaces_and_returns_previous():
    t = FDTable()
    a, b = Desc("a"), Desc("b")
    assert t.install_at(5, a, cloexec=True) is None
    assert t.get_cloexec(5)
    assert t.install_at(5, b) is a
    assert t.get(5) is b and not t.get_cloexec(5)
    # A slot filled by install_at is not handed out again by install.
    assert [t.install(Desc(str(i))) for i in range(6)] == [0, 1, 2, 3, 4, 6]


def test_dup_adds_a_reference_and_clears_cloexec():
    t = FDTable()
    a = Desc("a")
    t.install(a, cloexec=True)
    fd = t.dup(0)
    assert fd == 1 and t.get(1) is a and a.refs == 2
    assert not t.get_cloexec(1)
    assert t.dup(0, min_fd=7, cloexec=True) == 7 and t.get_cloexec(7) and a.refs == 3
    b = Desc("b")
    t.install_at(3, b)
    assert t.dup_to(0, 3) is b and t.get(3) is a and a.refs == 4
    assert errno_of(t.dup, 9) == errno.EBADF
    assert a.refs == 4


def test_cloexec_flags_and_exec():
    t = FDTable()
    keep, drop1, drop2 = Desc("keep"), Desc("drop1"), Desc("drop2")
    t.install(keep)
    t.install(drop1, cloexec=True)
    t.install(drop2)
    t.set_cloexec(2, True)
    assert t.get_cloexec(2)
    t.set_cloexec(0, False)
    assert t.close_on_exec() == [drop1, drop2]
    assert t.fds() == [0]
    assert t.install(Desc("n")) == 1


def test_close_range_and_close_all():
    t = FDTable()
    ds = [Desc(str(i)) for i in range(6)]
    for d in ds:
        t.install(d)
    assert t.close_range(1, 2) == ds[1:3]
    assert t.close_range(4, 2**32 - 1, cloexec_only=True) == []
    assert t.get_cloexec(4) and t.get_cloexec(5) and not t.get_cloexec(3)
    assert t.close_all() == [ds[0], ds[3], ds[4], ds[5]]
    assert len(t) == 0 and t.install(Desc("x")) == 0


def test_fork_copies_slots_and_references():
    t = FDTable(limit=64)
    a, b = Desc("a"), Desc("b")
    t.install(a)
    t.install(b, cloexec=True)
    child = t.fork()
    assert child.limit == 64
    assert child.get(0) is a and child.get(1) is b and child.get_cloexec(1)
    assert a.refs == 2 and b.refs == 2
    child.remove(0)
    assert t.get(0) is a  # the parent's slot is independent
    assert child.install(Desc("c")) == 0 and t.get(0) is a
