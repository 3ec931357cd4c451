"""The names the sandbox's kernel goes by, shared with the syscalls that report them
(uname, getrlimit), so /proc says what those say."""

from __future__ import annotations

from sentry.syscalls.sys_process import DEFAULT_RLIMITS, RELEASE, VERSION

__all__ = ["DEFAULT_RLIMITS", "RELEASE", "VERSION"]
