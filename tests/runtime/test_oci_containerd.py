"""runpsc as containerd's runtime (`ctr run --runc-binary runpsc`), through Debian's
containerd and its runc shim, with a containerd of the test's own (config, root, state and
socket in a temporary directory) and an image the test builds from busybox-static and
imports (no registry). What `ctr` shows is compared with runc's where both apply."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import select
import subprocess
from collections.abc import Iterator

import pytest

from tests.runtime.oci_support import IMAGE, Containerd, make_image_archive, runpsc_binary
from tests.support import need_binary, need_root

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    need_root()
    base = tmp_path_factory.mktemp("containerd")
    c = Containerd(base)
    c.start()
    try:
        c.ctr("image", "import", "--snapshotter", "native", str(make_image_archive(base)))
        yield c
    finally:
        c.stop()
    # ctr's cgroupsPath is /NAMESPACE/ID: each runtime's delete removed ID's directory (the
    # tests check), none removes the namespace's (runc neither); empty, it goes here.
    for point in _cgroup_points().values():
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(point, "runpsc-test"))


def _run_args(runtime: str, *args: str) -> list[str]:
    return ["run", "--snapshotter", "native", "--runc-binary", runtime, *args]


def _new_id(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{next(_ids)}"


@pytest.mark.parametrize("runtime", ["runpsc", "runc"])
def test_one_shot_command_and_its_status(containerd: Containerd, runtime: str) -> None:
    binary = runpsc_binary() if runtime == "runpsc" else need_binary("runc")
    out = containerd.ctr(*_run_args(binary, "--rm", IMAGE, _new_id("one"), "sh", "-c",
                                    "echo hello; id -u; cat missing; exit 7"), check=False)
    assert (out.stdout, out.returncode) == (b"hello\n0\n", 7), out.stderr
    assert b"cat: can't open 'missing': No such file or directory" in out.stderr
    assert containerd.ctr("container", "ls", "-q").stdout == b""


def test_long_running_exec_ps_kill_delete(containerd: Containerd) -> None:
    cid = _new_id("long")
    containerd.ctr(*_run_args(runpsc_binary(), "-d", IMAGE, cid, "sh", "-c",
                              'trap "exit 5" TERM; while :; do sleep 0.1; done'))
    try:
        tasks = containerd.ctr("task", "ls").stdout.decode()
        assert f"{cid}" in tasks and "RUNNING" in tasks, tasks
        got = containerd.ctr("task", "exec", "--exec-id", "x1", cid, "sh", "-c",
                             "echo in exec; exit 4", check=False)
        assert (got.stdout, got.returncode) == (b"in exec\n", 4), got.stderr
        # exec --tty: the exec'd program's own pty of the sandbox, its master sent to the
        # shim's console socket.
        need_binary("script", "bsdutils")
        ctr = " ".join(["ctr", "--address", containerd.address, "--namespace", "runpsc-test",
                        "task", "exec", "--tty", "--exec-id", "x2", cid, "sh", "-c",
                        "'tty; exit 2'"])
        got = subprocess.run(["script", "-qec", ctr, "/dev/null"], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=120)
        text = got.stdout.replace(b"^@", b"").replace(b"\r", b"").decode()
        # (ctr may add "resize pty ... cannot resize a stopped container", before or after
        # the output: its resize races the end of a program this short, whatever the
        # runtime)
        assert any(re.fullmatch(r"/dev/pts/\d+", line) for line in text.splitlines()), got
        assert got.returncode == 2
        ps = containerd.ctr("task", "ps", cid).stdout.decode().split()
        init_pid = containerd.ctr("task", "ls").stdout.decode().split(cid)[1].split()[0]
        assert init_pid in ps, ps
        # `ctr task metrics`: the shim reads the cgroup of the init pid, where runpsc put
        # the sandbox's host processes (Sentry, zygote, stubs, gofers); runc's shows the
        # same metrics.
        metrics = _metrics(containerd, cid)
        assert int(metrics["memory.usage_in_bytes"]) > 0, metrics
        assert int(metrics["pids.current"]) >= 1, metrics
        assert int(metrics["cpuacct.usage"]) > 0, metrics
        assert sorted(metrics) == sorted(_runc_metrics(containerd)), metrics
        dirs = _cgroup_dirs(int(init_pid))
        assert all(d.endswith(f"/runpsc-test/{cid}") for d in dirs), dirs
        pidfd = os.pidfd_open(int(init_pid))
        containerd.ctr("task", "kill", cid)  # SIGTERM: the trap's exit 5
        select.select([pidfd], [], [])  # the container's process has ended
        os.close(pidfd)
        # The shim may not have seen the exit yet: then delete says it is running.
        for _ in range(600):
            out = containerd.ctr("task", "delete", cid, check=False)
            if out.returncode == 0:
                break
            assert b"running" in out.stderr or b"not stopped" in out.stderr, out.stderr
            subprocess.run(["sleep", "0.1"])
        else:
            raise AssertionError("the task did not stop")
        assert b"exit code 5" in out.stdout + out.stderr or out.returncode == 0
        assert [d for d in dirs if os.path.exists(d)] == []  # delete removed the cgroup
    finally:
        containerd.ctr("task", "delete", "--force", cid, check=False)
        containerd.ctr("container", "rm", cid, check=False)
    assert containerd.ctr("task", "ls", "-q").stdout == b""


def _metrics(containerd: Containerd, cid: str) -> dict[str, str]:
    """`ctr task metrics ID`'s METRIC/VALUE table (what the shim read from the cgroup of
    the task's init pid)."""
    text = containerd.ctr("task", "metrics", cid).stdout.decode()
    rows = text.split("METRIC")[1].splitlines()[1:]
    return dict(line.split(None, 1) for line in rows if line.strip())


def _runc_metrics(containerd: Containerd) -> dict[str, str]:
    """`ctr task metrics` of a runc task."""
    cid = _new_id("runc-metrics")
    containerd.ctr(*_run_args(need_binary("runc"), "-d", IMAGE, cid, "sleep", "1000"))
    try:
        return _metrics(containerd, cid)
    finally:
        containerd.ctr("task", "delete", "--force", cid, check=False)
        containerd.ctr("container", "rm", cid, check=False)


def _cgroup_points() -> dict[str, str]:
    """Each mounted cgroup hierarchy's mount point, keyed as /proc/PID/cgroup names it."""
    points: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                opts = right.split()[2].split(",")
                key = ",".join(sorted(o for o in opts if o not in ("rw", "ro")
                                      and (o.startswith("name=") or "=" not in o)))
                points.setdefault("" if right.split()[0] == "cgroup2" else key,
                                  left.split()[4])
    return points


def _cgroup_dirs(pid: int) -> list[str]:
    """PID's cgroup directory in each mounted hierarchy."""
    points = _cgroup_points()
    dirs = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            dirs.append(points[",".join(sorted(ctrl.split(",")))] + path)
    return dirs


def test_init_killed_by_a_signal(containerd: Containerd) -> None:
    cid = _new_id("sig")
    proc = subprocess.Popen(["ctr", "--address", containerd.address, "--namespace",
                             "runpsc-test", *_run_args(runpsc_binary(), "--rm", IMAGE, cid,
                                                       "sh", "-c", "echo ready; exec sleep 1000")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        containerd.ctr("task", "kill", "--signal", "SIGKILL", cid)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 137, err  # 128 + SIGKILL, as the shim reports it


@pytest.mark.parametrize("runtime", ["runpsc", "runc"])
def test_tty(containerd: Containerd, runtime: str) -> None:
    """`ctr run --tty`: the program's stdio is a pty (/dev/pts/0), whose master reached the
    shim through --console-socket. ctr runs under `script` (a terminal of its own); what
    that terminal adds (CRs, an echoed NUL) is the same with runc."""
    need_binary("script", "bsdutils")
    binary = runpsc_binary() if runtime == "runpsc" else need_binary("runc")
    cid = _new_id("tty")
    ctr = " ".join(["ctr", "--address", containerd.address, "--namespace", "runpsc-test",
                    *_run_args(binary, "--tty", "--rm", IMAGE, cid, "sh", "-c",
                               "'tty; test -t 0 && echo stdin-is-a-tty; exit 3'")])
    out = subprocess.run(["script", "-qec", ctr, "/dev/null"], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    text = out.stdout.replace(b"^@", b"").replace(b"\r", b"").decode()
    assert text.splitlines() == ["/dev/pts/0", "stdin-is-a-tty"], out
    assert out.returncode == 3


def _task_status(containerd: Containerd, cid: str) -> str:
    for line in containerd.ctr("task", "ls").stdout.decode().splitlines():
        fields = line.split()
        if fields and fields[0] == cid:
            return fields[-1]
    return ""


@pytest.mark.parametrize("runtime", ["runpsc", "runc"])
def test_task_pause_resume(containerd: Containerd, runtime: str) -> None:
    """`ctr task pause/resume`: the shim runs `pause`/`resume`; the task shows PAUSED, and
    a paused task is killed and deleted with --force."""
    binary = runpsc_binary() if runtime == "runpsc" else need_binary("runc")
    cid = _new_id("pause")
    containerd.ctr(*_run_args(binary, "-d", IMAGE, cid, "sh", "-c", "while :; do :; done"))
    try:
        assert _task_status(containerd, cid) == "RUNNING"
        containerd.ctr("task", "pause", cid)
        assert _task_status(containerd, cid) == "PAUSED"
        containerd.ctr("task", "resume", cid)
        assert _task_status(containerd, cid) == "RUNNING"
        containerd.ctr("task", "pause", cid)
        assert containerd.ctr("task", "delete", cid, check=False).returncode != 0
        assert _task_status(containerd, cid) == "PAUSED"
        containerd.ctr("task", "delete", "--force", cid)
    finally:
        containerd.ctr("task", "delete", "--force", cid, check=False)
        containerd.ctr("container", "rm", cid, check=False)
    assert containerd.ctr("task", "ls", "-q").stdout == b""
