"""runpsc as a Docker runtime (`docker run --runtime runpsc`), through Debian's docker.io: a
dockerd of the test's own (data root, exec root, socket in a temporary directory; no
iptables, no bridge, the vfs storage driver) with runpsc registered beside runc, and an
image the test makes with `docker import` of a busybox rootfs tarball (no registry).
Each behaviour is run under both runtimes and what Docker shows must be the same."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.oci_support import PATH, Dockerd, make_rootfs_tarball
from tests.support import need_binary, need_root

IMAGE = "runpsc.test/busybox-docker:latest"
RUNTIMES = ["runpsc", "runc"]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    need_root()
    base = tmp_path_factory.mktemp("docker")
    d = Dockerd(base)
    try:
        d.start()
        d.docker("import", "--change", f"ENV PATH={PATH}", str(make_rootfs_tarball(base)),
                 IMAGE)
        yield d
    finally:
        d.stop()
    # Nothing of it is left: no process naming its directory, no mount under it.
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _names(p, str(base))]
    assert str(base) not in Path("/proc/self/mountinfo").read_text()


def _names(pid: str, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{next(_ids)}"


def _run(dockerd: Dockerd, runtime: str, *args: str, input: bytes | None = None,
         check: bool = False) -> subprocess.CompletedProcess[bytes]:
    return dockerd.docker("run", "--rm", "--runtime", runtime, *args, input=input, check=check)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_echo_and_exit_status(dockerd: Dockerd, runtime: str) -> None:
    out = _run(dockerd, runtime, IMAGE, "echo", "hi")
    assert (out.stdout, out.returncode) == (b"hi\n", 0), out.stderr
    out = _run(dockerd, runtime, IMAGE, "sh", "-c", "echo err >&2; exit 3")
    assert (out.stdout, out.stderr, out.returncode) == (b"", b"err\n", 3)
    out = _run(dockerd, runtime, "-i", IMAGE, "cat", input=b"from stdin\n")
    assert (out.stdout, out.returncode) == (b"from stdin\n", 0), out.stderr
    assert dockerd.docker("ps", "-aq").stdout == b""


def test_volume_env_workdir_user_as_runc(dockerd: Dockerd, tmp_path: Path) -> None:
    """-v HOST:CTR (and :ro), -e, -w, -u, --read-only, --network none, --hostname."""
    host = tmp_path / "vol"
    host.mkdir()
    (host / "f").write_text("from the host\n")
    script = ("cat /data/f; echo $FOO; pwd; id; echo written > /data/by-$RT; "
              "echo x > /ro/x || echo ro-refused; touch /newfile || echo root-ro; hostname; "
              "cat /etc/hostname")
    seen = {}
    for runtime in RUNTIMES:
        out = _run(dockerd, runtime, "-v", f"{host}:/data", "-v", f"{host}:/ro:ro",
                   "-e", "FOO=bar", "-e", f"RT={runtime}", "-w", "/data", "-u", "0:65534",
                   "--read-only", "--network", "none", "--hostname", "box", IMAGE,
                   "sh", "-c", script)
        seen[runtime] = (out.stdout, out.stderr, out.returncode)
        assert (host / f"by-{runtime}").read_text() == "written\n"
    assert seen["runpsc"] == seen["runc"]
    assert seen["runpsc"][0] == (b"from the host\nbar\n/data\nuid=0(root) gid=65534(nogroup)"
                                 b" groups=65534(nogroup)\nro-refused\nroot-ro\nbox\nbox\n")
    # A user by uid only, as runc gives it (no name in /etc/passwd for it).
    seen = {rt: _run(dockerd, rt, "-u", "1234", IMAGE, "id").stdout for rt in RUNTIMES}
    assert seen["runpsc"] == seen["runc"] == b"uid=1234 gid=0(root) groups=0(root)\n"


def _status(dockerd: Dockerd, name: str) -> str:
    return dockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                          name).stdout.decode().strip()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_exec_logs_stop(dockerd: Dockerd, runtime: str) -> None:
    """`run -d`, `exec` (status, -u, -e, -w), `top`, `logs`, `stop` whose SIGTERM reaches
    the program's trap; `kill -9 1` from an exec leaves the init alone; `--network
    container:NAME` (the container's network namespace by path) reaches a server the
    first container's exec started on its 127.0.0.1."""
    name = _name("d")
    dockerd.docker("run", "-d", "--name", name, "--runtime", runtime, IMAGE, "sh", "-c",
                   'trap "echo got TERM; exit 5" TERM; echo started; '
                   "while :; do sleep 0.1; done")
    try:
        assert _status(dockerd, name) == "running 0"
        out = dockerd.docker("exec", name, "sh", "-c", "echo in exec; exit 4", check=False)
        assert (out.stdout, out.returncode) == (b"in exec\n", 4), out.stderr
        out = dockerd.docker("exec", "-u", "65534", "-e", "A=b", "-w", "/tmp", name, "sh",
                             "-c", "id -u; echo $A; pwd")
        assert out.stdout == b"65534\nb\n/tmp\n"
        out = dockerd.docker("exec", name, "nosuchprogram", check=False)
        assert out.returncode == 126  # docker's code for the runtime's exec failure
        assert b'exec: "nosuchprogram": executable file not found in $PATH' in out.stdout
        out = dockerd.docker("exec", name, "sh", "-c", "kill -9 1; echo $?; mkdir /www; "
                             "echo hello > /www/index.html; httpd -p 127.0.0.1:8000 -h /www")
        assert out.stdout == b"0\n" and _status(dockerd, name) == "running 0"
        out = _run(dockerd, runtime, "--network", f"container:{name}", IMAGE, "wget", "-qO-",
                   "http://127.0.0.1:8000/")
        assert (out.stdout, out.returncode) == (b"hello\n", 0), out.stderr
        top = dockerd.docker("top", name).stdout.decode()
        assert "PID" in top.splitlines()[0] and len(top.splitlines()) >= 2, top
        dockerd.docker("stop", name)
        assert _status(dockerd, name) == "exited 5"
        assert dockerd.docker("logs", name).stdout == b"started\ngot TERM\n"
    finally:
        dockerd.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stop_kills_after_the_timeout(dockerd: Dockerd, runtime: str) -> None:
    """`sleep` as pid 1 has no SIGTERM handler: the SIGTERM is dropped (pid 1 of a pid
    namespace), and docker's SIGKILL after the timeout ends it (137)."""
    name = _name("s")
    dockerd.docker("run", "-d", "--name", name, "--runtime", runtime, IMAGE, "sleep", "1000")
    try:
        dockerd.docker("stop", "-t", "1", name)
        assert _status(dockerd, name) == "exited 137"
    finally:
        dockerd.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_states_through_create_pause_kill(dockerd: Dockerd, runtime: str) -> None:
    """`docker ps` shows created, running, paused, exited as the runtime reports them."""
    name = _name("p")
    dockerd.docker("create", "--name", name, "--runtime", runtime, IMAGE, "sleep", "1000")
    try:
        assert _status(dockerd, name) == "created 0"
        dockerd.docker("start", name)
        assert _status(dockerd, name) == "running 0"
        dockerd.docker("pause", name)
        assert _status(dockerd, name) == "paused 0"
        assert b"(Paused)" in dockerd.docker("ps", "--filter", f"name={name}").stdout
        dockerd.docker("unpause", name)
        assert _status(dockerd, name) == "running 0"
        dockerd.docker("kill", name)
        assert dockerd.docker("wait", name).stdout == b"137\n"
        assert _status(dockerd, name) == "exited 137"
    finally:
        dockerd.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tty(dockerd: Dockerd, runtime: str) -> None:
    """`docker run -t`: the program's stdio is the container's pty. docker runs under
    `script` (a terminal of its own)."""
    need_binary("script", "bsdutils")
    cmd = " ".join([dockerd.client, "--host", dockerd.host, "run", "--rm", "-t", "--runtime",
                    runtime, IMAGE, "sh", "-c", "'tty; test -t 0 && echo stdin-is-a-tty; "
                    "exit 2'"])
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    text = out.stdout.replace(b"\r", b"").decode()
    assert text.splitlines() == ["/dev/pts/0", "stdin-is-a-tty"], out
    assert out.returncode == 2


def test_capabilities_and_readonly_proc_sys_as_runc(dockerd: Dockerd) -> None:
    """Docker's capability sets (default, --cap-drop, --cap-add, a non-root user) and its
    read-only /proc/sys reach the program as under runc. (None of the /proc files Docker
    masks is in the Sentry's /proc; masking is compared in test_oci_config.py.)"""
    script = ('grep -E "Cap(Inh|Prm|Eff|Bnd)" /proc/self/status; touch /f && chown 5 /f; '
              "echo chown=$?; echo 1 > /proc/sys/kernel/hostname")
    for args in ([], ["--cap-drop", "CHOWN"], ["--cap-add", "SYS_ADMIN"], ["-u", "1000"]):
        seen = {}
        for runtime in RUNTIMES:
            out = _run(dockerd, runtime, *args, IMAGE, "sh", "-c", script)
            seen[runtime] = (out.stdout, out.stderr, out.returncode)
        assert seen["runpsc"] == seen["runc"], args
        assert b"/proc/sys/kernel/hostname: Read-only file system" in seen["runpsc"][1]
