"""TLS listeners with mutual authentication: `runpsc gofer serve --listen tls:...` as its own
process, reached by our client, `runpsc mount` and `runpsc conformance run`; every failure
(wrong CA, expired certificates, wrong host name, no client certificate) is one line naming
the cause, exit status 2, nothing mounted; certificates map to the exports they may attach."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import p9
from tests.conformance.helpers import mounted, stop, wait_for
from tests.gofer.helpers import confine_args, gofer_process
from tests.p9.conftest import free_port
from tests.support import missing, need_root
from tests.tlscerts import PKI, Pair, make_pki

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def exports(tmp_path: Path) -> tuple[Path, Path]:
    os.chmod(tmp_path, 0o755)
    data, other = tmp_path / "data", tmp_path / "other"
    for d in (data, other):
        d.mkdir(mode=0o755)
    (data / "hello").write_bytes(b"hello over TLS\n")
    return data, other


@contextlib.contextmanager
def tls_gofer(pki: PKI, exports: tuple[Path, Path], *, server: Pair | None = None,
              extra: tuple[str, ...] = ("--tls-allow", "alice=data", "--tls-allow", "bob=*",
                                        "--tls-allow", "carol=*")
              ) -> Iterator[tuple[int, subprocess.Popen]]:
    """A confined `runpsc gofer serve` with a TLS listener on 127.0.0.1 (its port)."""
    server = server or pki.server
    port = free_port()
    data, other = exports
    with gofer_process([*confine_args(), "-v", "--export", f"data={data}",
                        "--export", f"other={other}", "--listen", f"tls:127.0.0.1:{port}",
                        "--tls-cert", server.cert, "--tls-key", server.key,
                        "--tls-client-ca", pki.ca, "--tls-crl", pki.crl, *extra]) as proc:
        yield port, proc


def gofer_log(proc: subprocess.Popen) -> str:
    """Stop the gofer (we started it) and return what it logged."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return err.decode(errors="replace")


def client(pki: PKI, who: Pair | None, ca: str | None = None) -> p9.TLSClientConfig:
    return p9.TLSClientConfig(ca=ca or pki.ca, cert=who.cert if who else None,
                              key=who.key if who else None)


async def test_read_write_over_tls_and_the_python_path(pki, exports) -> None:
    data, other = exports
    with tls_gofer(pki, exports) as (port, proc):
        async with p9.open_address(f"tls:127.0.0.1:{port}", tls=client(pki, pki.alice)) as c:
            assert isinstance(c._sender.stream, trio.SSLStream)  # not the raw-socket path
            assert c._sender._raw is None and c._receiver._raw is None
            root = await c.attach(b"data", uname=b"root", n_uname=0)
            f = await root.walk([b"hello"])
            await f.open(os.O_RDONLY)
            assert await f.read(0, 100) == b"hello over TLS\n"
            await f.clunk()
            big = os.urandom(3 << 20)  # several msize frames each way
            w = await root.walk()
            await w.create(b"new", os.O_RDWR, 0o644, 0)
            at = 0
            while at < len(big):
                at += await w.write(at, big[at:at + (256 << 10)])
            await w.fsync()
            back = bytearray()
            while len(back) < len(big):
                back += await w.read(len(back), 1 << 20)
            assert bytes(back) == big
            await w.clunk()
            assert (data / "new").read_bytes() == big
            # alice's certificate maps to "data" only: another export is refused, logged.
            with pytest.raises(OSError) as e:
                await c.attach(b"other", uname=b"root", n_uname=0)
            assert e.value.errno == errno.EACCES
        async with p9.open_address(f"tls:127.0.0.1:{port}", tls=client(pki, pki.bob)) as c:
            root = await c.attach(b"other", uname=b"root", n_uname=0)  # bob: "*"
            await root.clunk()
        log = gofer_log(proc)
    assert "CN=alice" in log and "may not attach 'other'" in log and "EACCES" in log


async def test_server_connection_over_tls_takes_the_python_path(pki) -> None:
    """The C loops and the raw-socket sends and receives need the socket's fd, which over TLS
    carries ciphertext: a connection on a TLS stream must have none of them, while the same
    server on a plain socket has them (when p9._fastio is built)."""
    from p9._cloops import _fastio
    from p9._connection import _Connection

    class WithSources(p9.Filesystem):
        walk_sources = True

        async def attach(self, aname: bytes, uname: bytes, uid: int) -> p9.File:
            raise OSError(errno.ENOENT, "no files here")

    server = p9.Server(WithSources(), inline=p9.QUICK_MESSAGES)
    a, b = p9.socketpair()
    plain = _Connection(server, a)
    assert plain.sender._raw is not None and (plain.c is not None) == (_fastio is not None)
    tls = trio.SSLStream(b, p9.TLSServerConfig(pki.server.cert, pki.server.key,
                                                pki.ca).context(), server_side=True)
    over_tls = _Connection(server, tls)
    assert over_tls.c is None and over_tls.sender._raw is None
    assert over_tls.receiver._raw is None
    await a.aclose()
    await b.aclose()


def _refusal(args: list[str], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    out = subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True,
                         cwd=REPO, env=env, timeout=120, stdin=subprocess.DEVNULL)
    return out.returncode, out.stderr.decode(errors="replace").splitlines()


# (client certificate, the CA the client trusts, which server certificate, expected words)
CASES = {
    "wrong-ca": ("alice", "other_ca", "server", "not signed by the trusted CA"),
    "server-expired": ("alice", "ca", "server_expired", "server's certificate has expired"),
    "wrong-hostname": ("alice", "ca", "server_wrong_host", "not for this host name"),
    "no-client-certificate": (None, "ca", "server", "requires a client certificate"),
    "client-expired": ("client_expired", "ca", "server",
                       "refused our certificate: it has expired"),
    "client-other-ca": ("client_other_ca", "ca", "server", "not signed by a CA it trusts"),
    "client-revoked": ("carol", "ca", "server", "refused our certificate: revoked"),
    # (the client given the CA's revocation list: --tls-crl)
    "server-revoked": ("alice", "ca", "server_revoked", "server's certificate has been revoked"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mount_refused_one_line_exit_2(pki, exports, tmp_path, case) -> None:
    who, ca, server, words = CASES[case]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pair = getattr(pki, who) if who else None
    with tls_gofer(pki, exports, server=getattr(pki, server)) as (port, proc):
        args = ["mount", f"tls:127.0.0.1:{port}", str(mnt), "--aname", "data",
                "--tls-ca", getattr(pki, ca)]
        if pair:
            args += ["--tls-cert", pair.cert, "--tls-key", pair.key]
        if case == "server-revoked":
            args += ["--tls-crl", pki.crl]
        code, lines = _refusal(args)
        log = gofer_log(proc)
    assert code == 2 and len(lines) == 1 and words in lines[0], (lines, log)
    assert lines[0].startswith(f"runpsc mount: tls:127.0.0.1:{port}: TLS: "), lines
    assert not mounted(mnt) and os.listdir(mnt) == []
    if case.startswith(("no-client", "client-")):
        assert "TLS: refused 127.0.0.1:" in log, log  # the gofer logs whom it refused


def test_environment_variables_and_conformance_target(pki, exports) -> None:
    """`runpsc conformance run --target 9p:tls:...` with the TLS files from the environment:
    the cases run over TLS (and match); with the wrong CA: one line, status 2."""
    with tls_gofer(pki, exports) as (port, proc):
        env = dict(os.environ, RUNPSC_TLS_CERT=pki.alice.cert, RUNPSC_TLS_KEY=pki.alice.key,
                   RUNPSC_TLS_CA=pki.ca)
        target = f"9p:tls:127.0.0.1:{port},aname=data"
        out = subprocess.run([sys.executable, "-m", "runtime.cli", "conformance", "run",
                              "--target", target, "--cases", "open/*"], capture_output=True,
                             cwd=REPO, env=env, timeout=300, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stdout.decode()[-2000:] + out.stderr.decode()[-2000:]
        env["RUNPSC_TLS_CA"] = pki.other_ca
        code, lines = _refusal(["conformance", "run", "--target", target, "--cases",
                                "open/*"], env=env)
        gofer_log(proc)
    assert code == 2 and len(lines) == 1 and "not signed by the trusted CA" in lines[0], lines


def test_fuse_mount_over_tls(pki, exports, tmp_path) -> None:
    need_root()
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        missing("FUSE", "apt-get install fuse3 (and a kernel with /dev/fuse)")
    data, _ = exports
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with tls_gofer(pki, exports) as (port, g):
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "mount", f"tls:127.0.0.1:{port}", str(mnt),
             "--aname", "data", "--tls-ca", pki.ca, "--tls-cert", pki.alice.cert,
             "--tls-key", pki.alice.key], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=REPO)
        try:
            wait_for(lambda: mounted(mnt), "runpsc mount", proc)
            assert (mnt / "hello").read_bytes() == b"hello over TLS\n"
            (mnt / "written").write_bytes(b"through FUSE and TLS")
            assert (data / "written").read_bytes() == b"through FUSE and TLS"
            assert stop(proc) == 0
        finally:
            stop(proc)
            if mounted(mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
        gofer_log(g)
    assert not mounted(mnt)


def test_plain_tcp_warns_off_loopback(exports) -> None:
    data, _ = exports
    port = free_port()
    with gofer_process([*confine_args(), "--export", f"data={data}", "--tcp-user", "nobody",
                        "--listen", f"tcp:0.0.0.0:{port}"]) as proc:
        log = gofer_log(proc)
    assert f"tcp:0.0.0.0:{port} is not a loopback address" in log
    with gofer_process([*confine_args(), "--export", f"data={data}",
                        "--listen", f"tcp:127.0.0.1:{port}"]) as proc:
        assert "warning" not in gofer_log(proc)
