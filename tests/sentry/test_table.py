"""The syscall table: unique numbers, names matching Linux, every handler documented."""

import errno
import inspect

import pytest

import sentry.syscalls  # noqa: F401  (registers every family)
from sentry.errors import SyscallError
from sentry.kernel.table import TABLE, Level, name_of, number, syscall


def test_numbers_are_linux_x86_64():
    assert number("read") == 0
    assert number("getppid") == 110
    assert number("clone3") == 435
    assert number("fchmodat2") == 452
    assert name_of(39) == "getpid"
    assert name_of(100000) == "syscall_100000"
    with pytest.raises(KeyError):
        number("no_such_call")


def test_entries_consistent():
    assert TABLE, "no handlers registered"
    names = set()
    for nr, entry in TABLE.items():
        assert entry.number == nr
        assert number(entry.name) == nr
        assert entry.name not in names
        names.add(entry.name)
        assert isinstance(entry.level, Level)
        if entry.level in (Level.PARTIAL, Level.ERRNO):
            assert entry.note, f"{entry.name}: partial/errno entries need a note"
        if entry.handler is None:
            assert entry.level is Level.UNIMPLEMENTED
            continue
        doc = inspect.getdoc(entry.handler)
        assert doc and f"{entry.name}(2)" in doc, f"{entry.name}: handler docstring"
        assert entry.is_async == inspect.iscoroutinefunction(entry.handler)
        params = list(inspect.signature(entry.handler).parameters.values())
        assert 1 <= len(params) <= 7
        if len(params) < 7:
            assert params[-1].kind is inspect.Parameter.VAR_POSITIONAL, entry.name


def test_duplicate_registration_refused():
    entry = next(iter(TABLE.values()))
    with pytest.raises(ValueError, match="twice"):
        syscall(entry.name)(lambda t, *_: 0)
    assert TABLE[entry.number] is entry


def test_syscall_error_carries_errno():
    e = SyscallError(errno.EBADF)
    assert isinstance(e, OSError) and e.errno == errno.EBADF and "Bad file" in e.strerror
