"""`runpsc do --mount 9p:ADDRESS,aname=NAME[,ro][,cache=POLICY]:PATH`: a running gofer's
export (here over TLS, as its own confined process) mounted in a sandbox. What the sandbox
writes lands in the served directory; a change made on the host is seen or not as each
cache policy says; TLS failures are one line and exit status 2."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.sandbox import Mount
from tests.gofer.helpers import confine_args, gofer_process
from tests.p9.conftest import free_port
from tests.runtime.test_do import runpsc
from tests.tlscerts import PKI, Pair


@pytest.fixture
def served(served: Path) -> Path:
    (served / "hello").write_bytes(b"hello from the gofer's host\n")
    return served


@contextlib.contextmanager
def tls_gofer(pki: PKI, served: Path, server: Pair | None = None) -> Iterator[str]:
    """A confined TLS gofer serving `served` as "data"; its address."""
    port = free_port()
    server = server or pki.server
    with gofer_process([*confine_args(), "--export", f"data={served}",
                        "--listen", f"tls:127.0.0.1:{port}", "--tls-cert", server.cert,
                        "--tls-key", server.key, "--tls-client-ca", pki.ca,
                        "--tls-allow", "alice=data"]) as proc:
        yield f"tls:127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def tls_args(pki: PKI) -> list[str]:
    """The client's TLS options, with the CA's revocation list (the gofer's certificate
    is not in it: every TLS sandbox run checks it too)."""
    return ["--tls-ca", pki.ca, "--tls-cert", pki.alice.cert, "--tls-key", pki.alice.key,
            "--tls-crl", pki.crl]


WRITE = ("cat {d}/hello && echo 'written in the sandbox' > {d}/new && mkdir {d}/sub && "
         "echo deeper > {d}/sub/f && ls {d} && wc -c < {d}/sub/f && rm {d}/hello && ls {d}")


def test_sandbox_writes_through_a_tls_mount(pki, served, tmp_path) -> None:
    """The same script natively on a copy of the directory and in the sandbox on the mount:
    the same output, and the host sees the sandbox's files in the served directory."""
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    (native_dir / "hello").write_bytes((served / "hello").read_bytes())
    want = subprocess.run(["sh", "-c", WRITE.format(d=native_dir)], capture_output=True)
    assert want.returncode == 0, want.stderr
    with tls_gofer(pki, served) as address:
        got = runpsc("do", "--mount", f"9p:{address},aname=data:/data", *tls_args(pki), "--",
                     "sh", "-c", WRITE.format(d="/data"))
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
    assert (served / "new").read_bytes() == b"written in the sandbox\n"
    assert (served / "sub" / "f").read_bytes() == b"deeper\n"
    assert not (served / "hello").exists()


# The sandbox reads a file through the mount, the host changes it (through a --volume of
# the same directory: another gofer, as another host's writer would), the sandbox reads
# again (a new open), lists the directory (an open of it) and looks for a name it had found
# absent before the host created it.
POLICY_SCRIPT = ("cat /data/f; test -e /data/g || echo 'g absent'; "
                 "echo 'changed on the host' > /host/f; touch /host/g; "
                 "cat /data/f; ls /data > /dev/null; test -e /data/g && echo 'g present' || "
                 "echo 'g absent'")
SEEN = {
    # exclusive: the sandbox is the only writer, so what it cached stands.
    "exclusive": "one\ng absent\none\ng absent\n",
    # revalidating: the open re-checks the file (size and mtime moved: data fetched again);
    # opening the directory forgets the names it knew absent.
    "revalidating": "one\ng absent\nchanged on the host\ng present\n",
    # none: every lookup and read asks the server.
    "none": "one\ng absent\nchanged on the host\ng present\n",
}


@pytest.mark.parametrize("policy", sorted(SEEN))
def test_cache_policies_and_host_changes(pki, served, policy) -> None:
    (served / "f").write_bytes(b"one\n")
    with tls_gofer(pki, served) as address:
        got = runpsc("do", "--mount", f"9p:{address},aname=data,cache={policy}:/data",
                     "--volume", f"{served}:/host", *tls_args(pki), "--",
                     "sh", "-c", POLICY_SCRIPT)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout.decode() == SEEN[policy]
    assert (served / "f").read_bytes() == b"changed on the host\n"


def test_read_only_mount_and_tls_refusal(pki, served) -> None:
    with tls_gofer(pki, served) as address:
        ro = runpsc("do", "--mount", f"9p:{address},aname=data,ro:/data", *tls_args(pki), "--",
                    "sh", "-c", "cat /data/hello; echo x > /data/new || echo refused")
        bad = runpsc("do", "--mount", f"9p:{address},aname=data:/data", "--tls-ca",
                     pki.other_ca, "--tls-cert", pki.alice.cert, "--tls-key", pki.alice.key,
                     "--", "true")
        nocert = runpsc("do", "--mount", f"9p:{address},aname=data:/data", "--tls-ca", pki.ca,
                        "--", "true")
    assert ro.returncode == 0 and ro.stdout.endswith(b"refused\n"), ro
    assert b"Read-only file system" in ro.stderr
    assert not (served / "new").exists()
    for r, words in ((bad, b"not signed by the trusted CA"),
                     (nocert, b"requires a client certificate")):
        lines = r.stderr.splitlines()
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr


def test_server_name_other_than_the_address(pki, served) -> None:
    """A gofer whose certificate names gofer.invalid, dialled by address: refused unless
    RUNPSC_TLS_SERVER_NAME (--tls-server-name) says which name to expect."""
    with tls_gofer(pki, served, pki.server_wrong_host) as address:
        argv = ["do", "--mount", f"9p:{address},aname=data:/data", *tls_args(pki), "--",
                "cat", "/data/hello"]
        refused = runpsc(*argv)
        ok = runpsc(*argv, env=dict(os.environ, RUNPSC_TLS_SERVER_NAME="gofer.invalid"))
    assert refused.returncode == 2 and b"not for this host name" in refused.stderr
    assert (ok.returncode, ok.stdout) == (0, b"hello from the gofer's host\n"), ok.stderr


def test_root_from_a_tls_gofer(pki, tmp_path) -> None:
    """`--root 9p:tls:...`: the sandbox's root comes from a TLS gofer exporting /, under the
    in-memory overlay (writes stay in the sandbox); the same output as natively."""
    script = "cat /etc/os-release && echo overlay > /etc/runpsc-root-test && cat /etc/runpsc-root-test"
    want = subprocess.run(["sh", "-c", script.replace("/etc/runpsc-root-test", str(tmp_path / "t"))],
                          capture_output=True)
    port = free_port()
    with gofer_process([*confine_args(), "-v", "--export", "root=/:ro,submounts",
                        "--listen", f"tls:127.0.0.1:{port}", "--tls-cert", pki.server.cert,
                        "--tls-key", pki.server.key, "--tls-client-ca", pki.ca]) as proc:
        got = runpsc("do", "--root", f"9p:tls:127.0.0.1:{port},aname=root,cache=exclusive",
                     *tls_args(pki), "--", "sh", "-c", script)
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=20)
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
    assert b"connected with certificate CN=alice" in log
    assert not os.path.exists("/etc/runpsc-root-test")


def test_mount_spec_parsing() -> None:
    m = Mount.parse("9p:tls:gofer.example:5640,aname=data,ro,cache=none:/mnt/data")
    assert m == Mount("tls:gofer.example:5640", "data", "/mnt/data", True, "none")
    assert Mount.parse("9p:unix:/run/g.sock,aname=x:/x").cache == "revalidating"
    assert Mount.parse("9p:tcp:[::1]:564,aname=x:/x").address == "tcp:[::1]:564"
    for bad in ("tls:h:1,aname=x:/x", "9p:tls:h:1:/x", "9p:tls:h:1,aname=x:rel",
                "9p:tls:h:1,aname=x,cache=loose:/x", "9p:ftp:h:1,aname=x:/x"):
        with pytest.raises(ValueError):
            Mount.parse(bad)


def test_python_api_mounts_a_tls_gofer(pki, served) -> None:
    """The Python API takes the same mounts: `runtime.run` with a `Mount` (and its text form
    in a `Sandbox`) and the TLS material as a `p9.TLSClientConfig`."""
    import p9
    import runtime

    tls = p9.TLSClientConfig(ca=pki.ca, cert=pki.alice.cert, key=pki.alice.key)
    with tls_gofer(pki, served) as address:
        got = runtime.run(["sh", "-c", "cat /data/hello && echo via-api > /data/api"],
                          mounts=[runtime.Mount(address, "data", "/data")], tls=tls,
                          timeout=120)
        assert (got.returncode, got.stdout) == (0, b"hello from the gofer's host\n"), got.stderr
        assert (served / "api").read_bytes() == b"via-api\n"
        with runtime.Sandbox(mounts=[f"9p:{address},aname=data,ro:/ro"], tls=tls) as sb:
            assert sb.read_file("/ro/api") == b"via-api\n"
            denied = sb.exec(["sh", "-c", "echo x > /ro/new"])
            assert denied.returncode != 0 and b"Read-only file system" in denied.stderr


def test_squashing_tcp_gofer_owns_what_the_sandbox_creates(served) -> None:
    """A plain-TCP gofer serves every client as nobody unless told to trust them (gofer
    README): the sandbox's root creates files and directories there as over NFS with
    root_squash, owned by nobody, instead of failing on the chown that would give them to
    root."""
    served.chmod(0o777)
    port = free_port()
    with gofer_process([*confine_args(), "--export", f"data={served}",
                        "--listen", f"tcp:127.0.0.1:{port}"]) as proc:
        got = runpsc("do", "--mount", f"9p:tcp:127.0.0.1:{port},aname=data:/data", "--",
                     "sh", "-c", "echo made > /data/f && mkdir /data/d && ln -s f /data/l && "
                     "stat -c '%n %u %a' /data/f /data/d && cat /data/f")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode() == "/data/f 65534 644\n/data/d 65534 755\nmade\n"
    assert (served / "f").stat().st_uid == 65534 and (served / "d").stat().st_uid == 65534
    assert os.readlink(served / "l") == "f"
