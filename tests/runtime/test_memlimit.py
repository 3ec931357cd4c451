"""`runpsc do --memory SIZE`: one limit for the sandbox's tmpfs files, its root overlay's
writes and its processes' memory (sentry/README.md, "Memory limit").

- tmpfs: /tmp is half the memory (Linux's default tmpfs size), `df` says so and `dd` past it
  gets ENOSPC, compared with a native tmpfs of that size (or of no size, for the default);
- every tmpfs, /dev/shm, memfds and the root overlay draw on the one limit (ENOSPC);
- anonymous memory: mmap, mremap and brk get ENOMEM at the limit, compared with a native run
  under RLIMIT_AS of the same size (progs/memlimit.c); fork of a process committing more
  than what is left gets ENOMEM (strict accounting, documented: a memcg-limited native run
  would be OOM-killed instead);
- the Python API takes `memory=` too.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import textwrap

import pytest

from tests.runtime.test_do import ROOT, runpsc
from tests.sentry.progs.harness import build
from tests.support import need_binary, need_root

MiB = 1 << 20
#: the interpreter itself, not a wrapper script (a pyenv shim forks several processes,
#: which a small limit counts too)
PY = os.path.realpath(sys.executable)


def _tmpfs_script(d: str) -> str:
    """df of a tmpfs, a dd past its size, and df again (stdout only: dd's timing is not)."""
    df = f"df --output=size,used,avail {d} | tail -n 1"
    return (f"{df}; dd if=/dev/zero of={d}/x bs=1M count=200 2>/dev/null; echo dd=$?; "
            f"stat -c %s {d}/x; {df}; rm {d}/x; {df}")


@pytest.mark.parametrize("memory", [256 * MiB, None], ids=["256M", "default"])
def test_tmp_size_and_enospc_match_a_native_tmpfs(memory, tmp_path):
    """/tmp is a tmpfs of half the memory, like a native `mount -t tmpfs -o size=HALF`
    (without --memory: like a native tmpfs mounted without size=, half the host's)."""
    need_root()
    unshare = need_binary("unshare", "util-linux")
    opts = f"-o size={memory // 2}" if memory else ""
    want = subprocess.run(
        [unshare, "-m", "sh", "-c",
         f"mount -t tmpfs {opts} tmpfs {tmp_path} && {_tmpfs_script(str(tmp_path))}"],
        capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    flags = ["--memory", str(memory)] if memory else []
    got = runpsc("do", *flags, "--tmpfs", "/tmp", "--", "sh", "-c", _tmpfs_script("/tmp"))
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
    if memory:
        assert b"dd=1" in want.stdout


FILL = textwrap.dedent("""
    import errno, os, sys
    limit = int(sys.argv[1])
    def fill(path=None):
        fd = os.memfd_create("fill") if path is None else os.open(path, os.O_WRONLY | os.O_CREAT)
        block, n = b"x" * (1 << 20), 0
        try:
            while n < limit:
                n += os.write(fd, block)
        except OSError as e:
            print(path or "memfd", errno.errorcode[e.errno])
        return fd, n
    held = []
    for path in ("/tmp/a", "/var/tmp/b", "/dev/shm/c", None):
        held.append(fill(path))
    total = sum(n for _, n in held)
    print("total within the limit:", limit // 2 <= total <= limit)
    for fd, _ in held:
        os.close(fd)
    for path in ("/tmp/a", "/var/tmp/b", "/dev/shm/c"):
        os.unlink(path)
    fd, n = fill("/var/tmp/again")
    print("after freeing, the root takes:", n > total // 4)
""")


def test_every_tmpfs_and_the_root_share_the_limit():
    """/tmp (its own size: half), the root overlay, /dev/shm (64 MiB) and a memfd together
    stop at the limit with ENOSPC; freeing gives the room back."""
    limit = 256 * MiB
    got = runpsc("do", "--memory", str(limit), "--", PY, "-S", "-c", FILL, str(limit))
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == [
        "/tmp/a ENOSPC", "/var/tmp/b ENOSPC", "/dev/shm/c ENOSPC", "memfd ENOSPC",
        "total within the limit: True", "/var/tmp/again ENOSPC",
        "after freeing, the root takes: True"]


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    d = tmp_path_factory.mktemp("progs")
    build(d, "memlimit")
    return d


def test_anonymous_memory_enomem_matches_native_rlimit(progs):
    """mmap (every page touched), mremap and brk stop with ENOMEM between half the limit and
    the limit, and work again once memory is given back: as natively under RLIMIT_AS."""
    limit = 128 * MiB

    def as_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    want = subprocess.run([str(progs / "memlimit"), "128"], capture_output=True,
                          stdin=subprocess.DEVNULL, preexec_fn=as_limit)
    assert want.returncode == 0, want.stderr
    assert want.stdout.count(b"Cannot allocate memory, within the limit") == 2, want.stdout
    got = runpsc("do", "--memory", "128M", "--volume", f"{progs}:/progs:ro", "--",
                 "/progs/memlimit", "128")
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


FORK = textwrap.dedent("""
    import errno, os
    held = bytearray(100 << 20)          # committed: more than half of 128 MiB
    try:
        pid = os.fork()
    except OSError as e:
        print("fork:", errno.errorcode[e.errno])
    else:
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print("fork: ok")
    del held
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    print("fork after freeing:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print([l.split()[1] for l in open("/proc/meminfo") if l.startswith("CommitLimit")],
          open("/proc/sys/vm/overcommit_memory").read().strip())
    print("sysinfo's RAM:", os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
""")


def test_fork_past_the_limit_is_enomem():
    """Strict accounting (the documented model, Linux's vm.overcommit_memory=2 with the
    limit as CommitLimit): a fork that would commit a second copy past the limit fails with
    ENOMEM and the parent goes on; /proc says which model is in force, and sysinfo (what
    sysconf(_SC_PHYS_PAGES) reads) gives the limit as the machine's memory, as MemTotal."""
    got = runpsc("do", "--memory", "128M", "--", PY, "-S", "-c", FORK)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == [
        "fork: ENOMEM", "fork after freeing: 7", "['131072'] 2",
        f"sysinfo's RAM: {128 * MiB}"]


def test_python_api_takes_memory():
    probe = textwrap.dedent("""
        import trio
        from runtime.sandbox import Sandbox, SandboxConfig
        cfg = SandboxConfig(argv=["sh", "-c", "df --output=size /tmp | tail -n 1; "
                                  "grep MemTotal /proc/meminfo"],
                            env={"PATH": "/usr/bin:/bin"}, memory=64 << 20, tmpfs=["/tmp"])
        raise SystemExit(trio.run(Sandbox(cfg).run))
    """)
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, cwd=cwd,
                           env={"PYTHONPATH": str(ROOT)}, timeout=120,
                           stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"32768", b"MemTotal:", b"65536", b"kB"]


MPROTECT = textwrap.dedent("""
    import ctypes, errno, mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    size = 256 << 20                     # twice the limit, reserved: commits nothing
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    p = libc.mmap(None, size, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    print("reserve:", p != ctypes.c_void_p(-1).value)
    def mprotect(n, prot):
        r = libc.mprotect(p, n, prot)
        return "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
    print("all writable:", mprotect(size, rw))
    print("8 MiB writable:", mprotect(8 << 20, rw))
    ctypes.memset(p, 1, 8 << 20)
    print("back to none, then 64 MiB:", mprotect(8 << 20, 0),
          mprotect(64 << 20, rw))
""")


def test_mprotect_commits_what_it_makes_writable():
    """A PROT_NONE reservation is free; making it writable charges it (ENOMEM past the
    limit, the reservation unchanged), as under Linux's strict accounting."""
    got = runpsc("do", "--memory", "128M", "--", PY, "-S", "-c", MPROTECT)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == [
        "reserve: True", "all writable: ENOMEM", "8 MiB writable: ok",
        "back to none, then 64 MiB: ok ok"]


CHURN = ("grep Committed_AS /proc/meminfo; for i in $(seq 30); do /bin/true; (:); "
         "echo x > /tmp/f; dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null; done; "
         f"{PY} -S -c 'import threading; ts = [threading.Thread(target=len, args=((),)) "
         "for _ in range(4)]; [t.start() for t in ts]; [t.join() for t in ts]'; "
         "rm /tmp/f; grep Committed_AS /proc/meminfo")


def test_charges_come_back():
    """Processes that fork, exec, start threads and exit give back what they charged:
    Committed_AS is the same before and after (no leak that a long-lived sandbox would
    turn into a false ENOMEM)."""
    got = runpsc("do", "--memory", "128M", "--", "sh", "-c", CHURN)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    before, after = got.stdout.splitlines()
    assert before == after and before.startswith(b"Committed_AS:"), got.stdout


SHARED = textwrap.dedent("""
    import mmap, os
    shared = mmap.mmap(-1, 150 << 20)    # MAP_SHARED|MAP_ANONYMOUS: one object for all
    for off in range(0, len(shared), 1 << 20):
        shared[off:off + (1 << 20)] = b"s" * (1 << 20)
    pids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            shared[i] = ord("0") + i
            os._exit(0)
        pids.append(pid)
    print([os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids], shared[:3])
    try:
        mmap.mmap(-1, 150 << 20)
    except OSError as e:
        print("a second one:", e.strerror)
""")


def test_shared_anonymous_memory_is_charged_once():
    """150 MiB of shared anonymous memory under a 256 MiB limit is charged once however
    many processes fork with it (shmem's one object; each child is charged only its
    private copy); a second 150 MiB does not fit."""
    got = runpsc("do", "--memory", "256M", "--", PY, "-S", "-c", SHARED)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == [
        "[0, 0, 0] b'012'", "a second one: Cannot allocate memory"]


PIPE = textwrap.dedent("""
    import errno, os
    r, w = os.pipe()
    os.set_blocking(w, False)
    print("before:", os.write(w, b"p" * 8192), len(os.read(r, 8192)))
    fds = []
    for path in ("/tmp/a", "/var/tmp/b"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        for size in (1 << 20, 4096):     # to the last page the limit has
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        fds.append(fd)
    try:
        os.write(w, b"p" * 8192)
    except OSError as e:
        print("at the limit:", errno.errorcode[e.errno])
    os.unlink("/var/tmp/b")
    os.close(fds.pop())
    print("after freeing:", os.write(w, b"p" * 8192), len(os.read(r, 8192)))
""")


def test_pipe_buffers_count():
    """The bytes a pipe holds are the Sentry's memory, charged to the sandbox's: at the
    limit a pipe write is ENOMEM (a memcg-limited pipe_write's failed page allocation),
    and works again once memory is freed."""
    got = runpsc("do", "--memory", "64M", "--tmpfs", "/tmp", "--", PY, "-S", "-c", PIPE)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == [
        "before: 8192 8192", "at the limit: ENOMEM", "after freeing: 8192 8192"]


FILEMAP = textwrap.dedent("""
    import mmap, os
    fd = os.open("/vol/big", os.O_RDONLY)
    maps = []
    try:
        for _ in range(3):
            maps.append(mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ))
    except OSError as e:
        print(len(maps), "then", e.strerror)
    print(sum(m[len(m) - 1] for m in maps))
""")


def test_file_copies_count(tmp_path):
    """A read-only private mapping of a 48 MiB volume file is a copy the Sentry fills (Linux
    would share page cache): it is charged, so the third of them does not fit in 128 MiB
    with the interpreter's own, and the host is not made to hold more than the limit."""
    with open(tmp_path / "big", "wb") as f:
        f.seek(48 * MiB - 1)
        f.write(b"\x07")
    got = runpsc("do", "--memory", "128M", "--volume", f"{tmp_path}:/vol:ro", "--",
                 PY, "-S", "-c", FILEMAP)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == ["2 then Cannot allocate memory", "14"]


CHILDREN = textwrap.dedent("""
    import errno, os
    held = bytearray(40 << 20)
    r, w = os.pipe()
    pids = []
    for i in range(3):
        try:
            pid = os.fork()
        except OSError as e:
            print("fork", i, errno.errorcode[e.errno])
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)                # hold the copy until the parent says
            os._exit(0)
        pids.append(pid)
    os.close(w)
    print([os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids])
""")


def test_children_hold_their_charge():
    """Each forked child is charged its copy for as long as it lives: with 40 MiB held,
    the first child fits in 128 MiB and the second does not."""
    got = runpsc("do", "--memory", "128M", "--", PY, "-S", "-c", CHILDREN)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode().splitlines() == ["fork 1 ENOMEM", "[0]"]


def test_oci_memory_limit_from_the_spec(tmp_path) -> None:
    """An OCI container's linux.resources.memory.limit is its sandbox's limit, as
    `--memory` is: MemTotal, a tmpfs's default size (half) and ENOSPC past it."""
    need_root()
    from tests.runtime.oci_support import make_bundle, read_config, runpsc_argv, write_config

    bundle = make_bundle(tmp_path / "b", [
        "sh", "-c", "grep MemTotal /proc/meminfo; df -k /scratch | tail -1 | tr -s ' ' | cut -d' ' -f2;"
        " dd if=/dev/zero of=/scratch/x bs=1M count=100 2>&1 | grep -c 'No space left'"])
    cfg = read_config(bundle)
    cfg["linux"].setdefault("resources", {})["memory"] = {"limit": 64 << 20}
    cfg["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev"]})
    write_config(bundle, cfg)
    out = subprocess.run([*runpsc_argv(), "--root", str(tmp_path / "root"), "run", "--bundle",
                          str(bundle), "memlimit"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mem, size, nospc = out.stdout.split("\n")[:3]
    assert mem.split() == ["MemTotal:", str(64 << 10), "kB"]
    assert (int(size), int(nospc)) == (32 << 10, 1)
