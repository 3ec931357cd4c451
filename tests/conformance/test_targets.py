"""The suite against every target CI has: our gofer through our 9P client and through the
FUSE mount, the in-process VFS (goferfs on our gofer and on diod included), and (report
only) diod and nfs-ganesha. Each target runs the whole suite once; the oracle runs once (the
`oracle` fixture of conftest.py). Matrices go to artifacts/."""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import tempfile

import pytest

from conformance.suite import run_matrix
from tests.conformance.helpers import fuse_mount, gofer, save
from tests.support import missing, need_binary, need_root

# Each test runs the whole suite against its targets: on a busy machine one took 4 minutes,
# close to the suite-wide 300 s guard, and a case alone may take up to CASE_TIMEOUT.
pytestmark = pytest.mark.timeout(900)


def _export(tmp_path, name: str):
    d = tmp_path / name
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    return d


def _need_fuse() -> None:
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        missing("FUSE", "apt-get install fuse3 (and a kernel with /dev/fuse)")


async def test_gofer_via_9p_and_fuse_match_the_oracle(tmp_path, oracle) -> None:
    """Our gofer, directly and through `runpsc mount`, departs from Linux only where
    documented; the mount is at least as right as the direct client on every case. The two
    run at once, each with its own gofer process."""
    need_root()
    _need_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with gofer(_export(tmp_path, "e1"), tmp_path / "g1.sock") as _g1, \
            gofer(_export(tmp_path, "e2"), tmp_path / "g2.sock") as _g2, \
            fuse_mount(f"unix:{tmp_path / 'g2.sock'}", mnt):
        m = await run_matrix([f"9p:unix:{tmp_path / 'g1.sock'},aname=x", f"dir:{mnt}"],
                             oracle=oracle, parallel=True)
    save(m, "gofer")
    assert m.bad_cases() == []
    assert [t.kind for t in m.targets] == ["9p", "fuse-9p"]
    for i in range(2):
        assert m.unexpected(i) == [], m.text(only_differences=True)
    worse = [c.id for c in m.cases
             if m.verdicts[c.id][0].mark == "pass" and m.verdicts[c.id][1].mark != "pass"]
    assert worse == [], f"the FUSE mount departs where the 9p client does not: {worse}"
    assert not any(tr.cleanup_error for tr in m.targets), [t.cleanup_error for t in m.targets]


VFS_KINDS = ["tmpfs", "overlay", "gofer", "gofer-shared", "overlay-gofer", "overlay-copyup",
             "overlay-gofer-copyup"]


@pytest.mark.timeout(900)  # goferfs kinds on a loaded 2-CPU machine: several minutes
@pytest.mark.parametrize("kind", VFS_KINDS)
async def test_vfs_target_matches_the_oracle(kind: str, oracle) -> None:
    """The in-process VFS (tmpfs; overlays over tmpfs and over goferfs, with each case's
    set-up made through the overlay or in the lower layer; goferfs on a gofer process with
    either cache policy) departs from Linux only where documented. One kind at a time: the
    in-process VFS is CPU-bound, so running them at once gains nothing on 2 cores."""
    need_root()
    m = await run_matrix([f"vfs:{kind}"], oracle=oracle)
    save(m, f"vfs-{kind}")
    assert m.targets[0].kind == f"vfs-{kind}"
    assert m.unexpected(0) == [], m.text(only_differences=True)
    assert m.counts(0)["pass"] >= 0.9 * len(m.cases)


#: Where goferfs on diod departs because of diod itself: facts about that server.
_DIOD_PATHS = ("diod's fids hold path strings, not open handles: a file reached through a "
               "name that has since changed (a new link, an unlinked original) is ENOENT")
_DIOD_PATH_MAX = ("diod prefixes the export's path, so paths near PATH_MAX (how near depends "
                  "on the export's own path) are ENAMETOOLONG")
#: case-id glob -> reason
DIOD_OWN = {
    "links/into-subdir": _DIOD_PATHS,
    "links/survives-unlink-of-original": _DIOD_PATHS,
    "names/path-length-*": _DIOD_PATH_MAX,
    "names/deep-relative-beyond-path-max": _DIOD_PATH_MAX,
}


async def test_goferfs_on_diod_matches_the_oracle(tmp_path, oracle) -> None:
    """goferfs on diod, the reference 9P2000.L server (plain dialect, no extensions): only
    documented departures and diod's own (DIOD_OWN)."""
    need_root()
    from tests.p9 import peers

    diod = need_binary("diod")
    export = _export(tmp_path, "diod")
    sock = tmp_path / "diod.sock"
    with peers.diod(diod, str(export), unix_path=str(sock)):
        m = await run_matrix([f"vfs:9p:unix:{sock},aname={export},msize=65536"],
                             oracle=oracle)
    save(m, "vfs-diod")
    assert [t.kind for t in m.targets] == ["vfs-9p"]
    theirs = [c for c in m.unexpected(0) if not any(fnmatch.fnmatchcase(c, p) for p in DIOD_OWN)]
    assert theirs == [], m.text(only_differences=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_diod_and_ganesha_report_only(tmp_path, oracle) -> None:
    """diod and nfs-ganesha's 9P server (FSAL VFS), reported as matrices (run at once):
    their departures are facts about them, not failures of ours."""
    need_root()
    from tests.p9 import peers

    diod = need_binary("diod")
    ganesha = need_binary("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs")
    d_export, g_export = _export(tmp_path, "diod"), _export(tmp_path, "ganesha")
    work = tempfile.mkdtemp(prefix="ganesha-", dir=tmp_path)
    d_port, g_port = _free_port(), _free_port()
    with peers.diod(diod, str(d_export), tcp_port=d_port), \
            peers.ganesha(ganesha, str(g_export), work, port=g_port):
        m = await run_matrix([f"9p:tcp:127.0.0.1:{d_port},aname={d_export}",
                              f"9p:tcp:127.0.0.1:{g_port},aname={g_export}"],
                             oracle=oracle, parallel=True)
    for i, name in enumerate(("diod", "ganesha")):
        one = type(m)(m.cases, m.oracle, [m.targets[i]])
        one.verdicts = {c: [v[i]] for c, v in m.verdicts.items()}
        save(one, name)
        assert len(m.targets[i].results) == len(m.cases)
        assert m.counts(i)["pass"] > len(m.cases) // 2  # it really ran against the server


async def test_sandbox_targets_match_the_oracle(oracle) -> None:
    """The cases run by a program inside `runpsc do` (conformance/agent.py), through the
    Sentry's system calls, on the sandbox's /tmp (tmpfs), its overlay root and a local
    volume (a gofer the Sentry starts): only documented departures. At once: each target
    is its own sandbox process."""
    need_root()
    specs = ["sandbox:tmpfs", "sandbox:root", "sandbox:volume"]
    m = await run_matrix(specs, oracle=oracle, parallel=True)
    save(m, "sandbox")
    assert [t.kind for t in m.targets] == ["sandbox-tmpfs", "sandbox-root", "sandbox-volume"]
    for i in range(len(specs)):
        assert m.unexpected(i) == [], m.text(only_differences=True)
        assert m.counts(i)["pass"] >= 0.99 * len(m.cases)
    assert not any(tr.cleanup_error for tr in m.targets), [t.cleanup_error for t in m.targets]


async def test_sandbox_on_a_tls_mount_matches_the_oracle(tmp_path, oracle) -> None:
    """`sandbox:9p:tls:...`: the cases inside a sandbox on a `--mount` of a TLS gofer (its
    own confined process, certificates made here): only documented departures."""
    need_root()
    import p9
    from tests.gofer.helpers import confine_args, gofer_process
    from tests.tlscerts import make_pki

    pki = make_pki(str(tmp_path))
    export = _export(tmp_path, "remote")
    os.chmod(export, 0o777)
    port = _free_port()
    tls = p9.TLSClientConfig(ca=pki.ca, cert=pki.alice.cert, key=pki.alice.key)
    with gofer_process([*confine_args(), "--export", f"data={export}", "--listen",
                        f"tls:127.0.0.1:{port}", "--tls-cert", pki.server.cert,
                        "--tls-key", pki.server.key, "--tls-client-ca", pki.ca]):
        m = await run_matrix([f"sandbox:9p:tls:127.0.0.1:{port},aname=data"], oracle=oracle,
                             tls=tls)
    save(m, "sandbox-9p-tls")
    assert [t.kind for t in m.targets] == ["sandbox-9p"]
    assert m.unexpected(0) == [], m.text(only_differences=True)
    assert m.counts(0)["pass"] >= 0.98 * len(m.cases)
