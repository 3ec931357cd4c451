"""strace formatting: quoting and flag names compared with the real strace on this machine."""

import os
import re
import subprocess
import textwrap

import pytest

from sentry.strace.format import at_flags, escape, format_result, open_flags, stat_mode
from tests.support import need_binary

PY = "/usr/bin/python3"


def _native_strace(tmp_path, expr: str, body: str) -> list[str]:
    """Run a Python snippet natively under strace and return the trace lines."""
    strace = need_binary("strace")
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    out = tmp_path / "trace"
    subprocess.run(
        [strace, "-qq", "-s", "32", "-e", f"trace={expr}", "-o", str(out), PY, "-S", str(script)],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    return out.read_text().splitlines()


WRITES = [
    b"hello\n",
    bytes(range(40)),
    bytes(range(120, 150)),
    b"\x00123\x01a\x7f\xff9",
    b'quote"back\\slash\t',
    b"x" * 40,
    b"\x1b[0m\x08",
    bytes([7, 0x30]),
]


def test_escape_matches_strace(tmp_path):
    lines = _native_strace(
        tmp_path, "write", f"import os\nfor b in {WRITES!r}: os.write(1, b)\n"
    )
    quoted = [re.match(r'write\(1, (".*"(?:\.\.\.)?), \d+\)', line).group(1) for line in lines]
    assert quoted == [escape(b) for b in WRITES]


OPEN_FLAGS = [
    os.O_RDONLY,
    os.O_RDONLY | os.O_CLOEXEC,
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
    os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK,
    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
    os.O_PATH | os.O_CLOEXEC,
    os.O_RDWR | os.O_SYNC,
    os.O_RDWR | os.O_DSYNC | os.O_NOCTTY,
    os.O_RDWR | os.O_TMPFILE,
    os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECTORY | os.O_NOATIME,
    os.O_RDONLY | os.O_DIRECTORY | os.O_PATH,
]


def test_open_flags_match_strace(tmp_path):
    (tmp_path / "d").mkdir()
    lines = _native_strace(
        tmp_path,
        "openat",
        f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)  # os.open would add O_CLOEXEC
        for i, f in enumerate({OPEN_FLAGS!r}):
            path = b"d" if f & os.O_DIRECTORY else b"f%d" % i
            fd = libc.open(path, f, 0o640)
            if fd >= 0:
                os.close(fd)
        """,
    )
    ours = [line for line in lines if re.search(r'"(d|f\d+)"', line)]
    assert len(ours) == len(OPEN_FLAGS)
    for flags, line in zip(OPEN_FLAGS, ours, strict=True):
        m = re.match(r'openat\(AT_FDCWD, "[^"]+", ([^,)]+)(?:, (\d+))?\)', line)
        assert m, line
        assert m.group(1) == open_flags(flags), line
        if m.group(2):
            assert m.group(2) == "0640"


@pytest.mark.parametrize(
    ("flags", "text"),
    [(0, "0"), (0x100, "AT_SYMLINK_NOFOLLOW"), (0x1100, "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH"),
     (0x200, "AT_REMOVEDIR"), (0x10000, "0x10000")],
)
def test_at_flags(flags, text):
    assert at_flags(flags) == text


def test_results_and_modes():
    assert format_result("openat", -2) == "-1 ENOENT (No such file or directory)"
    assert format_result("read", 5) == "5"
    assert format_result("mmap", 0x7F0000001000) == "0x7f0000001000"
    assert format_result("lseek", (1 << 64) - 9) == "-1 EBADF (Bad file descriptor)"
    assert stat_mode(0o100644) == "S_IFREG|0644"
    assert stat_mode(0o41777) == "S_IFDIR|S_ISVTX|0777"
    assert stat_mode(0o20666) == "S_IFCHR|0666"
