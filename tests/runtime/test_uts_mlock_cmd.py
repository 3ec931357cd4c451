"""Under `runpsc do`, compared with native runs: hostname(1) changes the sandbox's UTS name,
which uname(2) and /proc/sys/kernel/hostname then agree on (natively in a UTS namespace of
its own), and `unshare --uts` gives a name of its own; mlock(2) shows in /proc/self/status
as VmLck. A write to /proc/sys/kernel/hostname shows in a pread at 0 on the same
descriptor."""

from __future__ import annotations

import subprocess

from tests.runtime.test_do import runpsc
from tests.support import need_binary, need_root

UTS = ("hostname sandbox-test && hostname && uname -n && cat /proc/sys/kernel/hostname && "
       "domainname example.org && cat /proc/sys/kernel/domainname && uname -a | cut -d' ' -f2"
       " && python3 -S -c \"import os; f = os.open('/proc/sys/kernel/hostname', os.O_RDWR); "
       "print(os.pread(f, 64, 0), os.pwrite(f, b'fresh', 0), os.pread(f, 64, 0), "
       "os.pread(f, 64, 2), os.uname().nodename)\"")
NESTED = ("hostname outer && unshare --uts --fork sh -c 'hostname inner && hostname && "
          "cat /proc/sys/kernel/hostname && uname -n' && hostname && "
          "cat /proc/sys/kernel/hostname && uname -n")
MLOCK = """
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
m = mmap.mmap(-1, 3 * 4096)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
def vmlck():
    return [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmLck')][0]
print(vmlck(), libc.mlock(ctypes.c_void_p(addr), 3 * 4096), vmlck())
print(libc.munlock(ctypes.c_void_p(addr), 4096), vmlck(), libc.munlockall(), vmlck())
"""


def test_hostname_matches_native():
    need_root()
    unshare = need_binary("unshare", "util-linux")
    need_binary("hostname", "hostname")
    want = subprocess.run([unshare, "--uts", "sh", "-c", UTS], capture_output=True,
                          stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    got = runpsc("do", "--", "sh", "-c", UTS)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


def test_unshare_uts_matches_native():
    """A UTS namespace of its own: the inner name is seen inside, the outer one after."""
    need_root()
    unshare = need_binary("unshare", "util-linux")
    want = subprocess.run([unshare, "--uts", "sh", "-c", NESTED], capture_output=True,
                          stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    got = runpsc("do", "--", "sh", "-c", NESTED)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


def test_mlock_shows_in_status():
    want = subprocess.run(["python3", "-S", "-c", MLOCK], capture_output=True,
                          stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    got = runpsc("do", "--", "python3", "-S", "-c", MLOCK)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
