"""Bad input to /proc and /sys fails as on Linux (the same script run natively and inside
`runpsc do`), /proc/sys/kernel/hostname is the sandbox's UTS name, and a loop reading every
file of the sandbox's /proc and /sys in odd chunks, with seeks, crashes nothing and shows
no host name, mount or pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.runtime.test_do import runpsc
from tests.support import native_child_setup

BAD_INPUT = r"""
import ctypes, errno, os, sys

def attempt(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode[e.errno]

def write(path, data):
    def go():
        fd = os.open(path, os.O_WRONLY)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)
    return attempt(go)

def read_at(path, addr, n):
    def go():
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, n, addr)
        finally:
            os.close(fd)
    return attempt(go)

print("meminfo", write("/proc/meminfo", b"x"))
print("uptime", write("/proc/uptime", b"1"))
print("pid stat", write("/proc/self/stat", b"x"))
print("pid status", write("/proc/self/status", b"x"))
print("sysctl ostype", write("/proc/sys/kernel/ostype", b"x"))
print("sysfs online", write("/sys/devices/system/cpu/online", b"0"))
print("oom abc", write("/proc/self/oom_score_adj", b"abc"))
print("oom 2000", write("/proc/self/oom_score_adj", b"2000"))
print("oom empty", write("/proc/self/oom_score_adj", b"\n"))
print("oom 7", write("/proc/self/oom_score_adj", b"7\n"),
      open("/proc/self/oom_score_adj").read().strip())
print("no such pid", attempt(lambda: os.stat("/proc/99999")),
      attempt(lambda: open("/proc/99999/status").read()))
buf = ctypes.create_string_buffer(b"secret in memory", 64)
addr = ctypes.addressof(buf)
print("mem own", read_at("/proc/self/mem", addr, 16))
print("mem unmapped", read_at("/proc/self/mem", 4096, 16))
fd = os.open("/proc/self/mem", os.O_RDWR)
os.pwrite(fd, b"SECRET", addr)
os.close(fd)
print("mem written", buf.value)
pid = os.fork()
if pid == 0:
    os.setgid(65534)
    os.setuid(65534)
    print("mem of another uid", read_at(f"/proc/{os.getppid()}/mem", addr, 4), flush=True)
    print("oom as nobody", write(f"/proc/{os.getppid()}/oom_score_adj", b"0"), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""

HOSTNAME = r"""
import errno, os
def write(data, offset=0):
    fd = os.open("/proc/sys/kernel/hostname", os.O_WRONLY)
    try:
        return os.pwrite(fd, data, offset)
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)
print(os.uname().nodename)
print(write(b"inside\n"), os.uname().nodename, open("/proc/sys/kernel/hostname").read().strip())
print(write(b"-box", 6), os.uname().nodename)
print(write(b"h" * 100), len(os.uname().nodename))
fd = os.open("/proc/sys/kernel/domainname", os.O_WRONLY)
os.write(fd, b"example.org\n")
os.close(fd)
print(os.uname()[1][:4], open("/proc/sys/kernel/domainname").read().strip())
if os.fork() == 0:
    os.setuid(65534)
    try:
        os.open("/proc/sys/kernel/hostname", os.O_WRONLY)
    except OSError as e:
        print("as nobody", errno.errorcode[e.errno], flush=True)
    os._exit(0)
os.wait()
"""

WALK = r"""
import errno, os, sys
needles = [bytes.fromhex(h) for h in sys.argv[1:]]
files = 0
errors = {}
found = []
me = str(os.getpid())
mine = set()
for top in ("/proc", "/sys"):
    for root, dirs, names in os.walk(top):
        parts = root.split("/")
        if len(parts) > 2 and parts[2].isdigit() and parts[2] == me and (
                names and ("cmdline" in names or "environ" in names)):
            names = [n for n in names if n not in ("cmdline", "environ")]  # our argv
        for name in names:
            path = os.path.join(root, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as e:
                key = errno.errorcode[e.errno]
                if e.errno == errno.ENOENT:  # which directory: fd/, ns/ ...
                    key += ":" + root.rsplit("/", 1)[1]
                errors[key] = errors.get(key, 0) + 1
                continue
            files += 1
            if len(parts) > 2 and parts[2] == me:
                mine.add(os.path.relpath(path, "/proc/" + me))
            data = b""
            try:
                for size in (1, 7, 4093, 65536):
                    data += os.read(fd, size)
                os.lseek(fd, 3, os.SEEK_SET)
                again = os.read(fd, 5)
                os.lseek(fd, 0, os.SEEK_END)
                os.lseek(fd, 0, os.SEEK_SET)
                data += os.read(fd, 1 << 20)
            except OSError as e:
                errors[errno.errorcode[e.errno]] = errors.get(errno.errorcode[e.errno], 0) + 1
            finally:
                os.close(fd)
            for n in needles:
                if n in data:
                    found.append((path, n))
print(repr((files, sorted(errors.items()), found, len(os.listdir("/proc/self/fd")),
            sorted(mine))))
"""


def run_both(script: str, tmp_path) -> tuple[str, str]:
    path = tmp_path / "script.py"
    path.write_text(script)
    native = subprocess.run([sys.executable, "-S", str(path)], capture_output=True,
                            preexec_fn=native_child_setup, stdin=subprocess.DEVNULL,
                            timeout=60)
    got = runpsc("do", "--volume", f"{tmp_path}:/t:ro", "--", "python3", "-S", "/t/script.py")
    assert native.returncode == 0, native.stderr
    assert got.returncode == 0, got.stderr
    return native.stdout.decode(), got.stdout.decode()


def test_bad_input_fails_as_on_linux(tmp_path):
    want, got = run_both(BAD_INPUT, tmp_path)
    assert got == want
    assert "oom abc EINVAL" in got and "no such pid ENOENT ENOENT" in got
    assert "mem own b'secret in memory'" in got and "mem unmapped EIO" in got
    assert "mem written b'SECRET in memory'" in got and "mem of another uid EACCES" in got


def test_hostname_is_the_sandbox_s_and_root_may_change_it(tmp_path):
    (tmp_path / "h.py").write_text(HOSTNAME)  # never natively: it would rename the host
    got = runpsc("do", "--volume", f"{tmp_path}:/t:ro", "--", "python3", "-S", "/t/h.py")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.decode().splitlines()
    assert lines[0] != socket.gethostname()
    assert lines[1:] == ["7 inside inside", "4 inside-box", "100 64",
                         "h" * 4 + " example.org", "as nobody EACCES"], lines


def test_reading_every_file_crashes_nothing_and_shows_nothing_of_the_host(tmp_path):
    needles = {socket.gethostname().encode(), str(os.getpid()).encode() + b" ("}
    with open("/proc/mounts") as f:
        needles |= {line.split()[0].encode() for line in f if line.startswith("/dev/")}
    needles = {n for n in needles if len(n) >= 4}
    (tmp_path / "walk.py").write_text(WALK)
    args = [n.hex() for n in sorted(needles)]
    got = runpsc("do", "--volume", f"{tmp_path}:/t:ro", "--", "sh", "-c",
                 f"python3 -S /t/walk.py {' '.join(args)}; python3 -S /t/walk.py")
    assert got.returncode == 0, got.stderr
    assert b"internal error" not in got.stderr, got.stderr
    first, second = got.stdout.decode().splitlines()
    files, errors, found, fds, mine = eval(first)  # noqa: S307 - our own script's repr
    assert files > 150, first
    assert found == [], found
    # fd/N are magic links: they open the object itself, so an empty pipe reads EAGAIN (the
    # walk opens with O_NONBLOCK) and seeking it is ESPIPE, as on Linux; fd/N and fdinfo/N
    # of the walk's own closed directory fd are gone when opened.
    allowed = {"EIO", "EACCES", "EINVAL", "EAGAIN", "ESPIPE", "ENOENT:fd", "ENOENT:fdinfo"}
    assert {e for e, _ in errors} <= allowed, errors
    assert eval(second)[3] == fds  # noqa: S307 - no descriptor left behind
    # the loop reaches every kind of file: magic links opened, accounting, mount files
    assert {"fd/0", "fd/1", "ns/mnt", "ns/pid", "io", "mountstats", "mountinfo", "stat",
            "smaps", f"task/{mine_pid(mine)}/io"} <= set(mine), mine


def mine_pid(names: list[str]) -> str:
    """The walking process's own thread id, from the task/ entries it opened."""
    return next(n.split("/")[1] for n in names if n.startswith("task/"))
