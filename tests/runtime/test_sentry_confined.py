"""The Sentry locks itself in once its sandbox has booted (issue 19; runtime/confine.py).

Seen from the host: a `runpsc do` serving a program run by root has a uid and gid of its own
(`sentry_id`), an empty read-only root (its /etc
copies, /fd and a procfs of its own with hidepid=invisible, /proc/sys read-only), mount,
network, IPC and UTS namespaces other than the host's, one capability
(CAP_NET_BIND_SERVICE) in every set, no_new_privs and its seccomp filter, its zygote none
and its program's stub only its own; with --no-confine it keeps the host's. From inside:
the forbidden operations (open a host path, exec, connect to the host's network, ptrace a
host process, mount, setns back to the host, write the host's kernel settings, reach
another process's root; kill, process_vm_readv/writev, pidfd_send_signal and pidfd_getfd,
which its allow-list keeps for its stubs, of a host root process and of another sandbox's
stub) fail in a process that called `confine_sentry`; forked children under the Sentry's
seccomp filter are killed for what it never calls; and the same process, filtered, still
runs a sandboxed program afterwards (stubs from its zygote ptraced, /proc/PID/mem used)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from runtime.confine import sentry_id, subordinate_id
from tests.gofer.helpers import need_rootless
from tests.runtime.test_do import ROOT
from tests.support import missing, need_binary, need_root

#: The unprivileged user of the rootless tests (tests/runtime/test_rootless_do.py).
USER = 4321
AS_USER = ("setpriv", "--reuid", str(USER), "--regid", str(USER), "--clear-groups")


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _serving(*opts: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """A `runpsc do` whose program said "ready" and waits for a line on stdin."""
    p = subprocess.Popen([*prefix, sys.executable, "-m", "runtime.cli", "do", *opts, "--", "/bin/sh",
                          "-c", "echo ready; read x; echo bye"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
    assert p.stdout is not None
    line = p.stdout.readline()
    if line != b"ready\n":
        p.kill()
        _, err = p.communicate()
        raise AssertionError((line, err))
    return p


def _finish(p: subprocess.Popen[bytes]) -> None:
    out, err = p.communicate(b"\n", timeout=60)
    assert (p.returncode, out) == (0, b"bye\n"), err


def test_the_serving_sentry_sees_nothing_of_the_host() -> None:
    need_root()
    p = _serving()
    try:
        pid = p.pid  # `python -m runtime.cli do` is the Sentry itself
        assert sorted(os.listdir(f"/proc/{pid}/root")) == ["etc", "fd", "proc"]
        assert sorted(os.listdir(f"/proc/{pid}/root/etc")) == ["group", "nsswitch.conf", "passwd"]
        with open(f"/proc/{pid}/mountinfo") as f:
            mounts = [line.split() for line in f]
        by_point = {m[4]: m for m in mounts}
        root = by_point["/"]
        assert root[root.index("-") + 1:root.index("-") + 3] == ["tmpfs", "sentry-root"], root
        assert "ro" in root[5].split(","), root
        # only its own fds and the host's procfs, its kernel settings read-only
        assert {m[root.index("-") + 1] for m in mounts if m[4] != "/"} == {"proc"}, mounts
        assert "ro" in by_point["/proc/sys"][5].split(","), mounts
        proc = by_point["/proc"]  # a procfs of its own, not the host's
        assert "hidepid=invisible" in proc[-1].split(","), proc
        with open("/proc/self/mountinfo") as f:
            ours = next(m.split() for m in f if m.split()[4] == "/proc")
        assert proc[2] != ours[2], (proc, ours)  # another superblock
        for ns in ("mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        st = _status(pid)
        for cap in ("CapEff", "CapPrm", "CapBnd"):
            assert int(st[cap], 16) == 1 << 10, (cap, st[cap])  # CAP_NET_BIND_SERVICE
        assert int(st["CapInh"], 16) == int(st["CapAmb"], 16) == 0
        assert st["NoNewPrivs"] == "1"
        # its seccomp allow-list; the stubs come from its zygote (no filter): the program's
        # stub has its own filter only, not the Sentry's on top
        assert (st["Seccomp"], st["Seccomp_filters"]) == ("2", "1"), st
        kids = {_status(int(c))["Name"]: _status(int(c)) for c in _children(pid)}
        assert kids["runpsc-zygote"]["Seccomp"] == "0", kids
        stub = kids["memfd:runpsc-st"]
        assert (stub["Seccomp"], stub["Seccomp_filters"]) == ("2", "1"), stub
        # an id of its own, its zygote's and stubs' too: no host user's, no other sandbox's
        ident = [str(sentry_id(pid))] * 4
        for who in (st, kids["runpsc-zygote"], stub):
            ids = (who["Uid"].split(), who["Gid"].split(), who["Groups"].strip())
            assert ids == (ident, ident, ""), who
    finally:
        _finish(p)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def _need_subordinate_ids() -> None:
    """newuidmap/newgidmap and a subordinate id range for USER (scripts/setup.sh gives one)."""
    need_binary("newuidmap", "uidmap")
    need_binary("newgidmap", "uidmap")
    if subordinate_id(USER, 1) is None:
        missing(f"a subordinate id range for uid {USER} in /etc/subuid and /etc/subgid",
                "scripts/setup.sh makes the user with one")


def test_rootless_sentry_is_confined_in_a_user_namespace_of_its_own() -> None:
    """Not root: the same walls inside a user namespace that maps the caller and one of its
    subordinate ids, which the Sentry becomes, with no capability at all
    (tests/runtime/test_rootless_do.py runs programs so)."""
    need_rootless()
    _need_subordinate_ids()
    p = _serving(prefix=AS_USER)
    try:
        pid = p.pid  # setpriv execs the interpreter: the same pid
        assert sorted(os.listdir(f"/proc/{pid}/root")) == ["etc", "fd", "proc"]
        for ns in ("user", "mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        st = _status(pid)
        ident = subordinate_id(USER, pid)
        assert ident is not None
        assert st["Uid"].split() == [str(ident[0])] * 4
        assert st["Gid"].split() == [str(ident[1])] * 4
        assert st["Groups"].split() == []
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        assert st["NoNewPrivs"] == "1"
    finally:
        _finish(p)


def test_no_confine_keeps_the_host_view() -> None:
    need_root()
    p = _serving("--no-confine")
    try:
        assert os.readlink(f"/proc/{p.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        assert os.path.samefile(f"/proc/{p.pid}/root/", "/")
        assert _status(p.pid)["NoNewPrivs"] == "0"
    finally:
        _finish(p)


#: Run in a fresh interpreter: lock in as the Sentry does, try what must fail, then serve.
PROBE = r"""
import ctypes, errno, os, signal, socket, sys, trio
from runtime.confine import confine_sentry, sentry_id
target, port, host_file, prog = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
other = int(sys.argv[5])  # a process of another Sentry's id (as its stubs are)
net = confine_sentry(None)
libc = ctypes.CDLL(None, use_errno=True)
def attempt(what, fn):
    try:
        fn()
        print(what, "ok")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
def call(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("open host file", lambda: open(host_file, "rb"))
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("connect host port", lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
attempt("ptrace host process", lambda: call(libc.ptrace(16, target, 0, 0)))  # ATTACH
attempt("mount tmpfs", lambda: call(libc.mount(b"x", b"/etc", b"tmpfs", 0, None)))
attempt("setns host mount ns", lambda: call(libc.setns(os.open("/proc/1/ns/mnt", os.O_RDONLY), 0)))
attempt("host root via proc", lambda: os.listdir("/proc/1/root/"))
attempt("host process root via proc", lambda: os.listdir(f"/proc/{target}/root/"))
attempt("write host sysctl", lambda: open("/proc/sys/kernel/core_pattern", "w").write("x"))
attempt("chroot", lambda: os.chroot("/proc"))
print("dumpable", libc.prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE: only its own id may reach it
print("own id", os.getresuid() == os.getresgid() == (sentry_id(os.getpid()),) * 3,
      os.getgroups())
# What the allow-list lets through but the id refuses: a host root process and another
# sandbox's stub may not be signalled, read, written or have their descriptors taken.
class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local = IOVec(ctypes.addressof(buf), 8)
def vm(pid, nr):  # process_vm_readv / process_vm_writev at the remote's stack page
    with open(f"/proc/self/maps") as f:  # any address: the permission is checked first
        addr = int(next(l for l in f if "[stack]" in l).split("-")[0], 16)
    remote = IOVec(addr, 8)
    L = ctypes.c_long
    r = libc.syscall(L(nr), L(pid), ctypes.byref(local), L(1), ctypes.byref(remote), L(1), L(0))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
for who, pid in (("host process", target), ("other sandbox's stub", other)):
    attempt(f"kill {who}", lambda: os.kill(pid, signal.SIGKILL))
    attempt(f"read {who}'s memory", lambda: vm(pid, 310))
    attempt(f"write {who}'s memory", lambda: vm(pid, 311))
    pidfd = os.pidfd_open(pid)  # names it, grants nothing
    attempt(f"pidfd_send_signal {who}", lambda: signal.pidfd_send_signal(pidfd, signal.SIGKILL))
    attempt(f"pidfd_getfd {who}", lambda: call(libc.syscall(ctypes.c_long(438), ctypes.c_long(pidfd), ctypes.c_long(0),
                                            ctypes.c_long(0)) < 0 and -1))
    os.close(pidfd)
    print(who, "alive", os.path.exists(f"/proc/{pid}/stat") or "(hidden)")

# The seccomp allow-list: each call made by a forked child under the Sentry's filter.
from gofer.confine import install_filter
from runtime.confine import restrict_syscalls, sentry_filter
code = sentry_filter()
sys_ = libc.syscall
sys_.restype = ctypes.c_long
sys_.argtypes = [ctypes.c_long] * 7
victim_fd = os.open(f"/fd/{prog}", os.O_RDONLY)  # a read-only host file, as donated ones are
def filtered(what, *call):
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        install_filter(code)
        r = sys_(*call, *[0] * (7 - len(call)))
        os._exit(0 if r >= 0 else min(ctypes.get_errno(), 100))
    _, st = os.waitpid(pid, 0)
    print(what, f"killed by {signal.Signals(os.WTERMSIG(st)).name}" if os.WIFSIGNALED(st)
          else ("allowed" if os.WEXITSTATUS(st) == 0 else errno.errorcode[os.WEXITSTATUS(st)]))
filtered("getpid", 39)
filtered("socket AF_UNIX", 41, 1, 1, 0)
filtered("socket AF_PACKET", 41, 17, 3, 0)
filtered("execve", 59, 0, 0, 0)
filtered("fork", 57)
filtered("clone a process", 56, signal.SIGCHLD, 0, 0, 0, 0)
filtered("clone3", 435, 0, 0)
filtered("ptrace ATTACH", 101, 16, target, 0, 0)
filtered("ptrace SEIZE", 101, 0x4206, target, 0, 0)
filtered("ptrace GETREGS", 101, 12, target, 0, 0)
filtered("mount", 165, 0, 0, 0, 0, 0)
filtered("unshare", 272, 0x40000000)
filtered("fchmod", 91, victim_fd, 0o777)
filtered("fchown", 93, victim_fd, 0, 0)
filtered("fsetxattr", 190, victim_fd, 0, 0, 0, 0)
filtered("flock", 73, victim_fd, 1)
filtered("fcntl F_SETLK", 72, victim_fd, 6, 0)
filtered("fcntl F_GETFL", 72, victim_fd, 3, 0)
zygote = restrict_syscalls()
with open("/proc/self/status") as f:
    print([line.split()[1] for line in f if line.startswith(("Seccomp:", "Seccomp_filters:"))])

import sentry.syscalls
from sentry.kernel import Kernel
from sentry.kernel.fdtable import FDTable
from sentry.loader import HostFiles
from vfs.fs.host import HostFD
async def serve():
    k = Kernel(exec_source=HostFiles(), network=net)
    k.stubs_from(zygote)
    fdt = FDTable()
    for fd in (0, 1, 2):
        fdt.install(HostFD(fd))
    # the program is given as a host fd: no host path is reachable any more
    return await k.run([f"/fd/{prog}".encode(), b"sandboxed", b"ok"], [], fdt)
sys.stdout.flush()
st = trio.run(serve)
print("served", os.waitstatus_to_exitcode(st))
"""


def test_forbidden_operations_fail_in_the_confined_sentry(tmp_path) -> None:
    need_root()
    setpriv = need_binary("setpriv", "util-linux")
    secret = tmp_path / "host-file"
    secret.write_bytes(b"host")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        victim = subprocess.Popen(["sleep", "120"])
        # as another sandbox's stub runs: dumpable, as that sandbox's Sentry's own id
        ident = str(sentry_id(victim.pid))
        stub = subprocess.Popen([setpriv, "--reuid", ident, "--regid", ident,
                                 "--clear-groups", "sleep", "120"])
        src = tmp_path / "echo.c"
        src.write_text('#include <stdio.h>\nint main(int c, char **v) '
                       '{ printf("%s %s\\n", v[1], v[2]); return 0; }\n')
        subprocess.run([need_binary("gcc"), "-static", "-o", str(tmp_path / "echo"), str(src)],
                       check=True)
        echo = os.open(tmp_path / "echo", os.O_RDONLY)  # a static program, given as an fd
        try:
            got = subprocess.run([sys.executable, "-c", PROBE, str(victim.pid), str(port),
                                  str(secret), str(echo), str(stub.pid)], cwd=str(ROOT),
                                 capture_output=True, timeout=120, pass_fds=(echo,))
            alive = victim.poll() is None and stub.poll() is None
        finally:
            os.close(echo)
            for p in (victim, stub):
                p.kill()
                p.wait()
    assert got.stdout.decode().splitlines() == [
        "open host file ENOENT",
        "exec ENOENT",
        "connect host port ECONNREFUSED",
        "ptrace host process EPERM",
        "mount tmpfs EPERM",
        # its own procfs (hidepid=invisible): a process it may not ptrace is not there
        "setns host mount ns ENOENT",
        "host root via proc ENOENT",
        "host process root via proc ENOENT",
        "write host sysctl EROFS",
        "chroot EPERM",
        "dumpable 1",
        "own id True []",
        *(line for who in ("host process", "other sandbox's stub") for line in (
            f"kill {who} EPERM", f"read {who}'s memory EPERM", f"write {who}'s memory EPERM",
            f"pidfd_send_signal {who} EPERM", f"pidfd_getfd {who} EPERM",
            f"{who} alive (hidden)")),
        "getpid allowed",
        "socket AF_UNIX allowed",
        "socket AF_PACKET killed by SIGSYS",
        "execve killed by SIGSYS",
        "fork killed by SIGSYS",
        "clone a process killed by SIGSYS",
        "clone3 ENOSYS",
        "ptrace ATTACH killed by SIGSYS",
        "ptrace SEIZE killed by SIGSYS",
        "ptrace GETREGS ESRCH",
        "mount killed by SIGSYS",
        "unshare killed by SIGSYS",
        "fchmod EPERM",
        "fchown killed by SIGSYS",
        "fsetxattr killed by SIGSYS",
        "flock killed by SIGSYS",
        "fcntl F_SETLK killed by SIGSYS",
        "fcntl F_GETFL allowed",
        "['2', '1']",
        "sandboxed ok",
        "served 0",
    ], got.stderr.decode()
    assert alive


#: The rootless Sentry's case: lock in as `runpsc do` run by USER does (a subordinate id),
#: then under its seccomp filter try what its allow-list keeps for its stubs against
#: another process of USER's.
ROOTLESS_PROBE = r"""
import ctypes, errno, os, signal, sys
from runtime.confine import confine_sentry, restrict_syscalls
target = int(sys.argv[1])
confine_sentry(None)
zygote = restrict_syscalls()
libc = ctypes.CDLL(None, use_errno=True)
print("ids", os.getpid(), *os.getresuid(), *os.getresgid(), os.getgroups())
def attempt(what, fn):
    try:
        fn()
        print(what, "ok")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local, remote = IOVec(ctypes.addressof(buf), 8), IOVec(ctypes.addressof(buf), 8)
def vm(nr):
    L = ctypes.c_long
    if libc.syscall(L(nr), L(target), ctypes.byref(local), L(1), ctypes.byref(remote), L(1), L(0)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("kill", lambda: os.kill(target, signal.SIGKILL))
pidfd = os.pidfd_open(target)
attempt("pidfd_send_signal", lambda: signal.pidfd_send_signal(pidfd, signal.SIGKILL))
attempt("process_vm_readv", lambda: vm(310))
attempt("process_vm_writev", lambda: vm(311))
zygote.close()
"""


def test_rootless_sentry_cannot_signal_the_callers_processes() -> None:
    """A kill or pidfd_send_signal (and process_vm_*) injected into a rootless caller's
    confined Sentry, against a `sleep` of the caller's, is refused: the Sentry runs as a
    subordinate id of the caller's, not as the caller."""
    need_rootless()
    _need_subordinate_ids()
    victim = subprocess.Popen([*AS_USER, "sleep", "120"])
    try:
        got = subprocess.run([*AS_USER, sys.executable, "-c", ROOTLESS_PROBE, str(victim.pid)],
                             cwd=str(ROOT), capture_output=True, timeout=120)
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    lines = got.stdout.decode().splitlines()
    assert got.returncode == 0 and lines[1:] == [
        "kill EPERM", "pidfd_send_signal EPERM", "process_vm_readv EPERM", "process_vm_writev EPERM",
    ], (lines, got.stderr.decode())
    pid, *ids = lines[0].split(" ", 8)[1:]
    ident = subordinate_id(USER, int(pid))
    assert ident is not None
    assert ids == [str(ident[0])] * 3 + [str(ident[1])] * 3 + ["[]"]
    assert alive
