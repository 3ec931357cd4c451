"""A sandbox whose remote mount's gofer is killed (SIGKILL) and restarted mid-run (on
loopback, and across a veth pair between two network namespaces), or whose link to it
goes dark (that veth pair set down): the connection is re-established (p9/_recover.py),
its fids walked and opened again, and the program carries on without an error, its
output the same as natively. A gofer that does not come back within `reconnect=SECONDS`:
EIO, and the sandbox exits cleanly. A file removed on the server while the gofer was
away: its open descriptor gets ESTALE.

The test and the program hand over through the sandbox's stdin and stdout (the program
says where it is, then waits for a line), never through sleeps."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.helpers import mounted, stop, wait_for
from tests.gofer.helpers import confine_args, gofer_process
from tests.p9.conftest import free_port
from tests.runtime.test_do import ROOT
from tests.runtime.test_remote_mounts import tls_args
from tests.support import missing, need_binary, need_root
from tests.tlscerts import PKI

# Writes through a descriptor opened before the restart (reopened by the reconnection),
# reads at its offset after it, a 3 MB stream written on both sides of the restart (page
# cache written back through the reopened fid at close), a tree copied with cp -r before
# it and compared with diff -r after it, creates and lists afterwards.
SCRIPT = """
set -e
exec 3<>{d}/log
echo one >&3
cat {d}/in
mkdir -p {d}/tree/a/b
echo x > {d}/tree/a/b/f; echo y > {d}/tree/a/g; ln -s b/f {d}/tree/a/l
cp -r {d}/tree {d}/tree2
head -c 1500000 /dev/zero | tr '\\0' a > {d}/big.part1
exec 4>{d}/big
cat {d}/big.part1 >&4
echo phase1
read go
cat {d}/big.part1 >&4
exec 4>&-
diff -r {d}/tree {d}/tree2 && echo same trees
echo two >&3
cat {d}/in
mkdir {d}/sub
echo more > {d}/sub/new
cat {d}/sub/new
ls {d}
wc -c < {d}/big
cksum < {d}/big
exec 3>&-
cat {d}/log
"""


def _gofer_args(kind: str, served: Path, port: int, pki: PKI, sock: Path | None = None
                ) -> list[str]:
    where = f"unix:{sock}" if kind == "unix" else f"{kind}:127.0.0.1:{port}"
    args = [*confine_args(), "--export", f"data={served}", "--listen", where]
    if kind == "tcp":
        args.append("--trust-client-identity")  # (loopback: the sandbox's root creates)
    if kind == "tls":
        args += ["--tls-cert", pki.server.cert, "--tls-key", pki.server.key,
                 "--tls-client-ca", pki.ca]
    return args


@contextlib.contextmanager
def _sandbox(mount: str, script: str, pki: PKI) -> Iterator[subprocess.Popen]:
    """`runpsc do --mount MOUNT -- sh -c SCRIPT` with its stdin and stdout piped (a
    private /tmp: the host's is shared with whatever else runs)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "do", "--tmpfs", "/tmp", "--mount", mount,
         *tls_args(pki), "--",
         "sh", "-c", script], cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _until(proc: subprocess.Popen, line: bytes) -> bytes:
    """The program's output up to and including `line` (it then waits on its stdin)."""
    assert proc.stdout is not None
    out = b""
    while not out.endswith(line):
        got = proc.stdout.readline()
        if not got:
            _, err = proc.communicate()
            raise AssertionError(f"the sandbox ended before {line!r}: {out!r}, {err!r}")
        out += got
    return out


def _native(script: str, tmp: Path) -> bytes:
    d = tmp / "native"
    d.mkdir()
    (d / "in").write_bytes(b"input\n")
    r = subprocess.run(["sh", "-c", script.format(d=d)], input=b"go\n", capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def served(served: Path) -> Path:
    (served / "in").write_bytes(b"input\n")
    return served


@pytest.mark.parametrize(("kind", "cache"), [
    ("tcp", "revalidating"), ("tcp", "none"), ("tls", "revalidating"), ("tls", "none"),
    # a unix socket's path is out of the confined Sentry's reach: the host dialer redials
    ("unix", "revalidating")])
def test_gofer_restart_mid_run(pki, served, tmp_path, kind, cache) -> None:
    want = _native(SCRIPT, tmp_path)
    port = free_port()
    sock = tmp_path / "gofer.sock"
    where = f"unix:{sock}" if kind == "unix" else f"{kind}:127.0.0.1:{port}"
    mount = f"9p:{where},aname=data,cache={cache}:/data"
    with gofer_process(_gofer_args(kind, served, port, pki, sock)) as first, \
            _sandbox(mount, SCRIPT.format(d="/data"), pki) as sb:
        out = _until(sb, b"phase1\n")
        first.kill()
        first.wait()
        assert sb.stdin is not None
        sb.stdin.write(b"go\n")
        sb.stdin.flush()  # (it may reach the mount before the new gofer listens: it waits)
        with gofer_process(_gofer_args(kind, served, port, pki, sock)):
            rest, err = sb.communicate(timeout=120)
    assert (out + rest, sb.returncode) == (want, 0), err.decode(errors="replace")
    assert (served / "log").read_bytes() == b"one\ntwo\n"
    assert (served / "big").stat().st_size == 3_000_000


GONE_SCRIPT = """
cat {d}/in
echo phase1
read go
cat {d}/in || echo "cat failed"
ls {d} > /dev/null || echo "ls failed"
f=$(mktemp) && echo "the rest of the sandbox works" > "$f" && cat "$f"
"""


def test_gofer_that_never_comes_back(pki, served, tmp_path) -> None:
    """After the window (reconnect=1): EIO for the mount's operations, the program goes on
    and the sandbox exits with its status; nothing is left behind (the harness checks)."""
    port = free_port()
    mount = f"9p:tcp:127.0.0.1:{port},aname=data,reconnect=1:/data"
    with gofer_process(_gofer_args("tcp", served, port, pki)) as g, \
            _sandbox(mount, GONE_SCRIPT.format(d="/data"), pki) as sb:
        out = _until(sb, b"phase1\n")
        g.kill()
        g.wait()
        rest, err = sb.communicate(b"go\n", timeout=120)
    assert sb.returncode == 0, err
    assert out + rest == (b"input\nphase1\ncat failed\nls failed\n"
                          b"the rest of the sandbox works\n")
    assert err.count(b"Input/output error") == 2, err


REMOVED_SCRIPT = """
exec 3<{d}/victim
exec 4<{d}/in
read line <&3; echo "$line"
echo phase1
read go
cat <&4
read line <&3 && echo "$line" || echo "victim failed"
cat <&3 || echo "victim failed"
"""


def test_file_removed_while_the_gofer_was_away(pki, served, tmp_path) -> None:
    """An open file removed on the server meanwhile cannot be re-established: its reads
    fail with ESTALE (cache=none: reads ask the server; the shell's `read` only reads),
    and cat's fstat finds it gone; the other descriptor carries on."""
    (served / "victim").write_bytes(b"first\nsecond\n")
    port = free_port()
    mount = f"9p:tcp:127.0.0.1:{port},aname=data,cache=none:/data"
    with gofer_process(_gofer_args("tcp", served, port, pki)) as first, \
            _sandbox(mount, REMOVED_SCRIPT.format(d="/data"), pki) as sb:
        out = _until(sb, b"phase1\n")
        first.send_signal(signal.SIGKILL)
        first.wait()
        (served / "victim").unlink()
        with gofer_process(_gofer_args("tcp", served, port, pki)):
            rest, err = sb.communicate(b"go\n", timeout=120)
    assert sb.returncode == 0, err
    assert out + rest == b"first\nphase1\ninput\nvictim failed\nvictim failed\n", err
    assert b"1 fid(s) could not be re-established" in err, err


def test_fuse_mount_across_a_gofer_restart(pki, served, tmp_path) -> None:
    """`runpsc mount` (FUSE) has the same reconnection: a descriptor opened before the
    gofer's restart reads and writes after it; a new file is created through the mount."""
    need_root()
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        missing("FUSE", "apt-get install fuse3 (and a kernel with /dev/fuse)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    port = free_port()
    with gofer_process(_gofer_args("tcp", served, port, pki)) as first:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "mount", f"tcp:127.0.0.1:{port}", str(mnt),
             "--aname", "data"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for(lambda: mounted(mnt), "runpsc mount", proc)
            fd = os.open(mnt / "in", os.O_RDWR)
            try:
                assert os.pread(fd, 100, 0) == b"input\n"
                first.kill()
                first.wait()
                with gofer_process(_gofer_args("tcp", served, port, pki)):
                    assert os.pwrite(fd, b"INPUT", 0) == 5
                    os.fsync(fd)
                    assert os.pread(fd, 100, 0) == b"INPUT\n"
                    (mnt / "after").write_bytes(b"made after the restart")
                    assert (served / "after").read_bytes() == b"made after the restart"
                    assert (served / "in").read_bytes() == b"INPUT\n"
            finally:
                os.close(fd)
            assert stop(proc) == 0
        finally:
            stop(proc)
            if mounted(mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
    assert not mounted(mnt)


def test_reconnect_option_parsing() -> None:
    from runtime.sandbox import DEFAULT_RECONNECT, Mount

    assert Mount.parse("9p:tcp:h:1,aname=x:/x").reconnect == DEFAULT_RECONNECT
    m = Mount.parse("9p:tls:h:1,aname=x,reconnect=2.5:/x")
    assert m.reconnect == 2.5 and Mount.parse(m.spec()) == m
    assert Mount.parse("9p:tcp:h:1,aname=x,reconnect=0:/x").reconnect == 0
    m = Mount.parse("9p:tcp:h:1,aname=x,timeout=1.5:/x")
    assert (m.timeout, Mount.parse(m.spec())) == (1.5, m)
    for bad in ("reconnect=-1", "reconnect=inf", "reconnect=soon", "reconnect", "timeout=-1",
                "timeout"):
        with pytest.raises(ValueError):
            Mount.parse(f"9p:tcp:h:1,aname=x,{bad}:/x")


@pytest.fixture(scope="module")
def fsync_stream() -> Iterator[str]:
    """tests/runtime/progs/fsync_stream.c, built static where the sandbox sees it (its /tmp
    is its own)."""
    need_root()
    d = Path(tempfile.mkdtemp(prefix="runpsc-fsync-stream-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    out = d / "fsync_stream"
    subprocess.run([need_binary("gcc"), "-static", "-O1", "-w", "-o", str(out),
                    str(Path(__file__).parent / "progs" / "fsync_stream.c")], check=True)
    yield str(out)
    shutil.rmtree(d)


@dataclass
class VethLink:
    """Two network namespaces joined by a veth pair: the gofer's (`gofer_ns`, address
    `gofer_ip`) and the sandbox's (`sandbox_ns`); `set(up)` brings the gofer's end up or
    down (a link gone dark: nothing is reset, packets are lost)."""

    gofer_ns: str
    sandbox_ns: str
    dev: str
    gofer_ip: str = "10.199.0.1"

    def set(self, up: bool) -> None:
        subprocess.run(["ip", "-n", self.gofer_ns, "link", "set", self.dev, "up" if up else "down"],
                       check=True)

    def _ss(self, state: str) -> list[list[str]]:
        out = subprocess.run(["ip", "netns", "exec", self.sandbox_ns, "ss", "-Htn", "state",
                              state, "dst", self.gofer_ip], capture_output=True, text=True,
                             check=True).stdout
        return [line.split() for line in out.splitlines()]

    def stuck(self) -> set[str]:
        """The sandbox side's TCP connections to the gofer with data sent and unacknowledged."""
        return {f[2] for f in self._ss("established") if int(f[1]) > 0}

    def dialling(self) -> bool:
        """Whether the sandbox side is trying to connect to the gofer (a SYN unanswered)."""
        return bool(self._ss("syn-sent"))


@pytest.fixture
def veth() -> Iterator[VethLink]:
    need_root()
    need_binary("ip", "iproute2")
    need_binary("ss", "iproute2")
    tag = str(os.getpid() % 100000)
    link = VethLink(f"runpsc-g{tag}", f"runpsc-s{tag}", f"vg{tag}")
    made: list[str] = []
    try:
        for ns in (link.gofer_ns, link.sandbox_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        subprocess.run(["ip", "link", "add", link.dev, "netns", link.gofer_ns, "type", "veth",
                        "peer", "name", f"vs{tag}", "netns", link.sandbox_ns], check=True)
        for ns, dev, ip in ((link.gofer_ns, link.dev, link.gofer_ip),
                            (link.sandbox_ns, f"vs{tag}", "10.199.0.2")):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev], check=True)
            for d in (dev, "lo"):
                subprocess.run(["ip", "-n", ns, "link", "set", d, "up"], check=True)
        yield link
    finally:
        for ns in made:  # (the pair goes with them)
            subprocess.run(["ip", "netns", "del", ns], check=False)


@contextlib.contextmanager
def _stream_run(veth: VethLink, prog: str, mount_opts: str,
                command: list[str] | None = None) -> Iterator[subprocess.Popen]:
    """The sandbox, in its namespace, running `prog /data/stream 48 8` (or `command`);
    killed on the way out if it has not ended."""
    mount = f"9p:tcp:{veth.gofer_ip}:5640,aname=data,{mount_opts}:/data"
    with subprocess.Popen(
            ["ip", "netns", "exec", veth.sandbox_ns, sys.executable, "-m", "runtime.cli", "do",
             "--tmpfs", "/tmp", "--mount", mount, "--",
             *(command or [prog, "/data/stream", "48", "8"])],
            cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE) as sb:
        try:
            yield sb
        finally:
            if sb.poll() is None:
                sb.kill()
                sb.communicate()


def _gofer_in(veth: VethLink, served: Path) -> contextlib.AbstractContextManager:
    return gofer_process([*confine_args(), "--export", f"data={served}", "--listen",
                          f"tcp:{veth.gofer_ip}:5640", "--trust-client-identity"],
                         prefix=("ip", "netns", "exec", veth.gofer_ns))


# A tree copied with cp -r before the gofer's kill, the checksummed stream written and
# fsync'd across it, the copy compared with diff -r after it.
VETH_SCRIPT = """set -e
cp -r {d}/tree {d}/tree2
{prog} {d}/stream 48 8
diff -r {d}/tree {d}/tree2 && echo same trees
"""


def test_gofer_killed_and_restarted_across_the_link(veth, served, fsync_stream,
                                                    tmp_path) -> None:
    """The gofer in its own network namespace, the sandbox in the other, over the veth
    pair: the gofer is killed with SIGKILL after block 8 and started again; the program
    finishes with the data (and output) a native run has, and the tree copied before the
    kill compares equal after it. Each step waits for the program's line or the new
    gofer's readiness, never for a time."""
    for top in (served, tmp_path):
        (top / "tree" / "a" / "b").mkdir(parents=True)
        (top / "tree" / "a" / "b" / "f").write_bytes(b"x\n" * 5000)
        (top / "tree" / "a" / "g").write_bytes(b"y\n")
        (top / "tree" / "a" / "l").symlink_to("b/f")
    native = subprocess.run(["sh", "-c", VETH_SCRIPT.format(d=tmp_path, prog=fsync_stream)],
                            input=b"go\n", capture_output=True, check=True).stdout
    command = ["sh", "-c", VETH_SCRIPT.format(d="/data", prog=fsync_stream)]
    with _gofer_in(veth, served) as first, \
            _stream_run(veth, fsync_stream, "reconnect=60", command) as sb:
        out = _until(sb, b"paused\n")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert sb.stdin is not None
        sb.stdin.write(b"go\n")  # (it may reach the mount before the new gofer listens)
        sb.stdin.flush()
        with _gofer_in(veth, served):
            rest, err = sb.communicate(timeout=120)
    assert (out + rest, sb.returncode) == (native, 0), err.decode(errors="replace")
    assert b"re-established" in err, err
    assert (served / "stream").read_bytes() == (tmp_path / "stream").read_bytes()


def test_link_down_then_up_mid_stream(veth, served, fsync_stream, tmp_path) -> None:
    """The gofer's link goes dark after block 8 while the program writes block 9: the
    request stays unacknowledged, the connection is dropped at timeout=1 and dialled again
    (unanswered while dark); the link comes back, the dial gets through, and the program
    finishes with the data a native run has. Each step waits for what `ss` shows of the
    sandbox side's sockets, not for a time."""
    native = subprocess.run([fsync_stream, str(tmp_path / "stream"), "48", "8"],
                            input=b"go\n", capture_output=True, check=True).stdout
    with _gofer_in(veth, served), \
            _stream_run(veth, fsync_stream, "reconnect=60,timeout=1") as sb:
        out = _until(sb, b"paused\n")
        veth.set(False)
        assert sb.stdin is not None
        sb.stdin.write(b"go\n")
        sb.stdin.flush()
        wait_for(lambda: bool(veth.stuck()), "a request stuck in the dark link", sb, 60)
        stuck = veth.stuck()
        wait_for(lambda: not veth.stuck() & stuck, "the stuck connection dropped", sb, 60)
        wait_for(veth.dialling, "a redial into the dark link", sb, 60)
        veth.set(True)
        rest, err = sb.communicate(timeout=120)
    assert (out + rest, sb.returncode) == (native, 0), err.decode(errors="replace")
    assert b"re-established" in err, err
    assert (served / "stream").read_bytes() == (tmp_path / "stream").read_bytes()


def test_link_down_past_the_window_is_eio(veth, served, fsync_stream) -> None:
    """The link stays dark past timeout + reconnect window: the program's write or fsync
    fails with EIO, it exits with its own status, nothing hangs; the blocks fsync'd before
    are on the gofer's disk."""
    with _gofer_in(veth, served), \
            _stream_run(veth, fsync_stream, "reconnect=1,timeout=1") as sb:
        try:
            out = _until(sb, b"paused\n")
            veth.set(False)
            rest, err = sb.communicate(b"go\n", timeout=120)
        finally:
            veth.set(True)
    assert sb.returncode == 1, err
    assert out == b"paused\n"
    assert rest in (b"write block 9: EIO\n", b"fsync block 9: EIO\n"), (rest, err)
    assert (served / "stream").stat().st_size >= 9 * 65536
