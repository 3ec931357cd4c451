"""runpsc's runc command line, driven directly as containerd's shim drives it, and compared
with runc (Debian's) on the same bundles: the lifecycle with a --pid-file whose process is
the container (it lives as long as its pid 1 and dies with its status), state JSON, exit
codes and messages for the error cases, and config.json errors that leave nothing behind."""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.oci_support import make_bundle, read_config, runpsc_argv, write_config
from tests.support import need_binary, need_root

WAIT = ["sh", "-c", 'trap "echo got TERM; exit 9" TERM; echo ready; while :; do sleep 0.1; done']


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    need_root()
    return make_bundle(tmp_path / "bundle", ["sh", "-c", "echo out; echo err >&2; exit 7"])


class Runtime:
    """One runtime binary with its own --root."""

    def __init__(self, argv: list[str], root: Path) -> None:
        self.argv = argv
        self.root = root

    def __call__(self, *args: str, check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        out = subprocess.run([*self.argv, "--root", str(self.root), *args], text=True,
                             timeout=120, **kw)
        if check and out.returncode != 0:
            raise AssertionError(f"{args}: {out.returncode} {out.stderr}")
        return out

    def state(self, cid: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self("state", cid, check=True).stdout)
        return doc


@pytest.fixture
def runpsc(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(runpsc_argv(), tmp_path / "runpsc-root")
    yield rt
    _force_delete_all(rt)


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime([need_binary("runc")], tmp_path / "runc-root")
    yield rt
    _force_delete_all(rt)


def _force_delete_all(rt: Runtime) -> None:
    for cid in rt("list", "-q").stdout.split():
        pid = rt.state(cid)["pid"]
        rt("delete", "--force", cid)
        _reap(pid)


def _reap(pid: int) -> int | None:
    """The container's process is ours once `create` has exited (this test process is a
    child subreaper, as the shim is): its wait status, or None if it is not our child."""
    if not pid:
        return None
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return status


def _created(rt: Runtime, bundle: Path, cid: str, tmp_path: Path,
             extra: tuple[str, ...] = (), **kw: Any) -> int:
    pid_file = tmp_path / f"{cid}.pid"
    # The container's process keeps create's stdio (as runc's does): not a pipe we read to
    # its end here.
    kw.setdefault("stderr", subprocess.DEVNULL)
    rt("create", "--bundle", str(bundle), "--pid-file", str(pid_file), *extra, cid, check=True,
       **kw)
    return int(pid_file.read_text())


def test_lifecycle_pid_file_process_is_the_container(runpsc: Runtime, bundle: Path,
                                                     tmp_path: Path) -> None:
    out = open(tmp_path / "out", "w+")
    pid = _created(runpsc, bundle, "c1", tmp_path, stdout=out, stderr=out)
    # The process in --pid-file outlived `create` and came to us, the subreaper.
    assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1] == str(os.getpid())
    st = runpsc.state("c1")
    assert (st["id"], st["status"], st["pid"], st["bundle"]) == ("c1", "created", pid,
                                                                 str(bundle))
    assert st["rootfs"] == str(bundle / "rootfs")
    assert out.read() == ""  # nothing has run yet
    runpsc("start", "c1", check=True)
    status = _reap(pid)
    assert status is not None and os.waitstatus_to_exitcode(status) == 7
    out.seek(0)
    assert sorted(out.read().split()) == ["err", "out"]
    assert runpsc.state("c1")["status"] == "stopped"
    assert runpsc.state("c1")["pid"] == 0
    runpsc("delete", "c1", check=True)
    assert runpsc("list", "-q").stdout == ""
    assert not (runpsc.root / "c1").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_ends_init_and_its_process_dies_alike(runpsc: Runtime, bundle: Path,
                                                   tmp_path: Path, sig: signal.Signals) -> None:
    """SIGKILL: the container's process is killed by SIGKILL (what the shim reports as 137);
    SIGTERM reaches the program's trap, and the process exits with the trap's status."""
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)
    r, w = os.pipe()
    pid = _created(runpsc, bundle, "k1", tmp_path, stdout=w)
    os.close(w)
    runpsc("start", "k1", check=True)
    with os.fdopen(r) as lines:
        assert lines.readline() == "ready\n"
        assert runpsc.state("k1")["status"] == "running"
        runpsc("kill", "k1", sig.name.removeprefix("SIG"), check=True)
        status = _reap(pid)
        rest = lines.read()
    assert status is not None
    if sig == signal.SIGKILL:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    else:
        assert (rest, os.waitstatus_to_exitcode(status)) == ("got TERM\n", 9)


def test_exec_and_ps(runpsc: Runtime, bundle: Path, tmp_path: Path) -> None:
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    cfg["hostname"] = "box"
    write_config(bundle, cfg)
    r, w = os.pipe()
    pid = _created(runpsc, bundle, "e1", tmp_path, stdout=w)
    os.close(w)
    runpsc("start", "e1", check=True)
    with os.fdopen(r) as lines:
        assert lines.readline() == "ready\n"
        got = runpsc("exec", "e1", "sh", "-c", "hostname; echo $((6*7)); exit 4")
        assert (got.stdout, got.returncode) == ("box\n42\n", 4)
        # --detach: the pid in --pid-file stands for the program and ends with it.
        xpid_file = tmp_path / "exec.pid"
        runpsc("exec", "--detach", "--pid-file", str(xpid_file), "e1", "sh", "-c", "exit 3",
               check=True)
        xstatus = _reap(int(xpid_file.read_text()))
        assert xstatus is not None and os.waitstatus_to_exitcode(xstatus) == 3
        # SIGKILL of that pid ends the program too (under runc it is the program).
        xr, xw = os.pipe()
        runpsc("exec", "--detach", "--pid-file", str(xpid_file), "e1", "sh", "-c",
               "echo ready; exec sleep 100", check=True, stdout=xw, stderr=subprocess.DEVNULL)
        os.close(xw)
        with os.fdopen(xr) as xout:
            assert xout.readline() == "ready\n"
            xpid = int(xpid_file.read_text())
            os.kill(xpid, signal.SIGKILL)
            assert xout.read() == ""  # the program's end closed its stdout
        xstatus = _reap(xpid)
        assert xstatus is not None and os.WTERMSIG(xstatus) == signal.SIGKILL
        pids = json.loads(runpsc("ps", "--format", "json", "e1", check=True).stdout)
        assert pid in pids
        assert runpsc("exec", "e1", "nosuchprogram").returncode == 255  # as runc
        runpsc("kill", "e1", "TERM", check=True)
        status = _reap(pid)
    assert status is not None and os.waitstatus_to_exitcode(status) == 9


def test_delete_force_leaves_nothing(runpsc: Runtime, bundle: Path, tmp_path: Path) -> None:
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)
    created = _created(runpsc, bundle, "f1", tmp_path, stdout=subprocess.DEVNULL)
    runpsc("delete", "--force", "f1", check=True)  # only created: its Sentry and gofers go
    assert _reap(created) is not None
    r, w = os.pipe()
    pid = _created(runpsc, bundle, "f2", tmp_path, stdout=w)
    os.close(w)
    runpsc("start", "f2", check=True)
    with os.fdopen(r) as lines:
        assert lines.readline() == "ready\n"
    assert runpsc("delete", "f2").returncode == 1  # running, no --force
    runpsc("delete", "--force", "f2", check=True)
    status = _reap(pid)
    assert status is not None and os.WIFSIGNALED(status)
    assert runpsc("list", "-q").stdout == ""
    assert os.listdir(runpsc.root) == []  # the fixture's process check covers the rest


def _message(stderr: str) -> str:
    """The error message, without logrus's time and the program's name."""
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    text = json.loads(f'"{m.group(1)}"') if m else stderr.strip()
    return text.replace("runpsc", "RUNTIME").replace("runc", "RUNTIME")


class Transcript:
    """What one runtime answers to a run of commands: (label, exit code, message if it
    failed), plus values noted on the way; runc's and runpsc's must be equal."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.got: list[tuple[str, int, str]] = []

    def check(self, label: str, *args: str) -> None:
        out = self.rt(*args)
        self.got.append((label, out.returncode, _message(out.stderr) if out.returncode
                         else ""))

    def note(self, label: str, value: str) -> None:
        self.got.append((label, 0, value))


def _compare(runc: Runtime, runpsc: Runtime, each: Any) -> list[tuple[str, int, str]]:
    """Run `each(transcript)` under runc, then runpsc; their transcripts must match (the
    transcript is returned)."""
    seen = {}
    for name, rt in (("runc", runc), ("runpsc", runpsc)):
        t = Transcript(rt)
        each(t)
        seen[name] = t.got
    assert seen["runpsc"] == seen["runc"]
    return seen["runc"]


def test_errors_and_state_match_runc(runpsc: Runtime, runc: Runtime, bundle: Path,
                                     tmp_path: Path) -> None:
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)
    (tmp_path / "empty").mkdir()

    def each(t: Transcript) -> None:
        rt, check = t.rt, t.check
        r, w = os.pipe()
        pid = _created(rt, bundle, "c", tmp_path, stdout=w)
        os.close(w)
        check("unknown state", "state", "nope")
        check("unknown start", "start", "nope")
        check("unknown kill", "kill", "nope", "KILL")
        check("unknown delete", "delete", "nope")
        check("unknown exec", "exec", "nope", "true")
        check("in use", "create", "--bundle", str(bundle), "c")
        check("bad id", "create", "--bundle", str(bundle), "a/b")
        check("no bundle", "create", "--bundle", str(tmp_path / "nonexistent"), "d")
        check("no config", "create", "--bundle", str(tmp_path / "empty"), "d")
        created = rt.state("c")
        check("start", "start", "c")
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
        running = rt.state("c")
        check("start running", "start", "c")
        check("delete running", "delete", "c")
        check("kill", "kill", "c", "KILL")
        _reap(pid)
        stopped = rt.state("c")
        check("kill stopped", "kill", "c", "TERM")
        check("start stopped", "start", "c")
        check("delete stopped", "delete", "c")
        check("gone", "state", "c")
        for st, status in ((created, "created"), (running, "running"), (stopped, "stopped")):
            assert st["status"] == status
            t.note(status, json.dumps(sorted(st)) + st["id"] + st["bundle"] + st["rootfs"]
                   + str(st["pid"] == 0))

    _compare(runc, runpsc, each)


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c.pop("process"), "process"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["process"].update(args="sh"), "process.args"),
    (lambda c: c["process"].update(cwd="tmp"), "process.cwd"),
    (lambda c: c["process"]["user"].update(uid="0"), "process.user.uid"),
    (lambda c: c["process"].update(env=["NOEQUALS"]), "process.env[0]"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1,
                                              "hard": 1}]), "process.rlimits[0].type"),
    (lambda c: c["root"].update(path="nowhere"), "root.path"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "nfs", "source": "s"}),
     "mounts[6].type"),
    (lambda c: c["mounts"].append({"destination": "x", "type": "tmpfs"}),
     "mounts[6].destination"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexistent",
                                   "options": ["rbind"]}), "mounts[6].source"),
    (lambda c: c.update(annotations={"runpsc.network": "bogus"}), "annotations.runpsc.network"),
    (lambda c: c.update(annotations={"runpsc.memory": "lots"}), "annotations.runpsc.memory"),
    (lambda c: c["linux"].update(resources={"memory": {"limit": "1G"}}),
     "linux.resources.memory.limit"),
    (lambda c: c.update(hooks={"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path"),
    (lambda c: c.update(hostname=5), "hostname"),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid", "path": "/proc/1/ns/pid"}]),
     "linux.namespaces[0].path"),
    (lambda c: c["linux"].update(namespaces=[{"type": "network", "path": "/proc/1/ns/pid"}]),
     "linux.namespaces[0].path"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_config_errors_name_the_field_and_leave_nothing(runpsc: Runtime, bundle: Path,
                                                        tmp_path: Path, change: Any,
                                                        field: str) -> None:
    cfg = read_config(bundle)
    change(cfg)
    write_config(bundle, cfg)
    out = runpsc("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "p"), "bad")
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1
    assert f"{field}:" in out.stderr, out.stderr
    assert not (tmp_path / "p").exists()
    assert runpsc("list", "-q").stdout == ""
    assert not (runpsc.root / "bad").exists()


def test_log_json_as_the_shim_reads_it(runpsc: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    out = subprocess.run([*runpsc.argv, "--root", str(runpsc.root), "--log", str(log),
                          "--log-format", "json", "--systemd-cgroup", "state", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert (entry["level"], entry["msg"]) == ("error", "container does not exist")


def test_spec_writes_a_config_runpsc_runs(runpsc: Runtime, tmp_path: Path) -> None:
    need_root()
    bundle = make_bundle(tmp_path / "b2", ["true"])
    (bundle / "config.json").unlink()
    runpsc("spec", cwd=bundle, check=True)
    cfg = read_config(bundle)
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    assert runpsc("spec", cwd=bundle).returncode == 1  # exists already
    cfg["process"].update(terminal=False, args=["sh", "-c", "exit 5"])
    write_config(bundle, cfg)
    out = runpsc("run", "--bundle", str(bundle), "r1")
    assert out.returncode == 5
    assert runpsc("list", "-q").stdout == ""  # run deletes what it created
    feats = json.loads(runpsc("features", check=True).stdout)
    assert "poststop" in feats["hooks"]


class ConsoleSocket:
    """What the shim does for `terminal: true`: listen, receive the pty master."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)

    def master(self) -> int:
        conn, _ = self.sock.accept()
        with conn:
            _, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
        self.sock.close()
        (level, kind, data), = anc
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        return int(array.array("i", data)[0])


class Reader:
    """Reads a terminal's master up to a marker, keeping what came after it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = os.read(self.fd, 4096)
            assert chunk, self.buf
            self.buf += chunk
        end = self.buf.index(marker) + len(marker)
        got, self.buf = self.buf[:end], self.buf[end:]
        return got

    def rest(self) -> bytes:
        """Everything up to the hangup (every replica closed: EIO on Linux)."""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                got, self.buf = self.buf, b""
                return got
            self.buf += chunk


def test_terminal_console_socket_job_control(runpsc: Runtime, bundle: Path,
                                             tmp_path: Path) -> None:
    """terminal: true: the master reaches --console-socket; the shell in the container owns
    the terminal: job control, ^C to the foreground job only, the window size set on the
    master, and the shell's exit status is the container's."""
    cfg = read_config(bundle)
    cfg["process"].update(terminal=True, args=["sh", "-i"], env=["PATH=/bin", "PS1=$ "],
                          consoleSize={"height": 30, "width": 90})
    write_config(bundle, cfg)
    console = ConsoleSocket(tmp_path / "console.sock")
    pid = _created(runpsc, bundle, "t1", tmp_path, stdout=subprocess.DEVNULL,
                   extra=("--console-socket", str(console.path)))
    master = console.master()
    term = Reader(master)
    try:
        runpsc("start", "t1", check=True)
        term.until(b"$ ")
        os.write(master, b"tty; stty size\n")
        out = term.until(b"$ ")
        assert b"/dev/pts/0\r\n30 90\r\n" in out, out
        # The job says when it runs (then it is the terminal's foreground group).
        os.write(master, b"sh -c 'echo started; exec sleep 100'\n")
        term.until(b"started\r\n")
        os.write(master, b"\x03")  # ^C: the job dies, the shell stays
        out = term.until(b"$ ")
        os.write(master, b"echo status=$?\n")
        assert term.until(b"$ ").endswith(b"status=130\r\n$ "), out
        os.write(master, b"exit 6\n")
        status = _reap(pid)
    finally:
        os.close(master)
    assert status is not None and os.waitstatus_to_exitcode(status) == 6


def test_run_in_the_foreground_on_a_terminal(runpsc: Runtime, tmp_path: Path) -> None:
    """`runpsc run` of a `terminal: true` bundle without --console-socket is its own
    console, as runc's: the program gets the sandbox's pty, sized like the caller's."""
    need_root()
    need_binary("script", "bsdutils")
    bundle = make_bundle(tmp_path / "tb", ["sh", "-c", "tty; stty size; exit 4"],
                         terminal=True)
    cmd = " ".join([*runpsc_argv(), "--root", str(runpsc.root), "run", "--bundle",
                    str(bundle), "t1"])
    out = subprocess.run(["script", "-qec", f"stty rows 20 cols 70; {cmd}", "/dev/null"],
                         capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    text = out.stdout.replace(b"^@", b"").replace(b"\r", b"").decode()
    assert (text, out.returncode) == ("/dev/pts/0\n20 70\n", 4), out
    assert runpsc("list", "-q").stdout == ""


#: Two processes looping in user code (no system call): each keeps its CPU until frozen.
BUSY = ["sh", "-c", 'trap "echo got TERM; exit 9" TERM; (while :; do :; done) & echo ready; '
        "while :; do :; done"]


def _thread_states(pid: int) -> set[str]:
    """The host state letters of every thread of `pid`."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            out.add(Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(") ", 1)[1][0])
    return out


def test_pause_resume_events_update_match_runc(runpsc: Runtime, runc: Runtime, bundle: Path,
                                               tmp_path: Path) -> None:
    """pause/resume, and what is refused while paused, as runc; a signal sent while paused
    is taken once resumed; `events --stats` in runc's shape; `update` accepted."""
    cfg = read_config(bundle)
    cfg["process"]["args"] = BUSY
    write_config(bundle, cfg)

    def each(t: Transcript) -> None:
        rt, check = t.rt, t.check
        r, w = os.pipe()
        pid = _created(rt, bundle, "p", tmp_path, stdout=w)
        os.close(w)
        rt("start", "p", check=True)
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
            check("resume running", "resume", "p")
            check("pause", "pause", "p")
            t.note("state", rt.state("p")["status"])
            if rt is runpsc:
                # Every thread of the sandbox is held by the Sentry at a host stop (the
                # busy loop would otherwise be running), the Sentry itself is not.
                sentry, *stubs = json.loads(rt("ps", "--format", "json", "p",
                                               check=True).stdout)
                assert sentry == pid and len(stubs) == 2
                for stub in stubs:
                    assert _thread_states(stub) == {"t"}, stub
            check("pause paused", "pause", "p")
            check("delete paused", "delete", "p")
            check("exec paused", "exec", "p", "true")
            check("unknown pause", "pause", "nope")
            check("unknown resume", "resume", "nope")
            check("unknown events", "events", "--stats", "nope")
            check("update", "update", "--pids-limit", "10", "--memory", "100000000", "p")
            stats = json.loads(rt("events", "--stats", "p", check=True).stdout)
            assert (stats["type"], stats["id"]) == ("stats", "p")
            usage = stats["data"]["cpu"]["usage"]
            assert all(isinstance(usage[k], int) for k in ("total", "kernel", "user"))
            assert isinstance(stats["data"]["memory"]["usage"]["usage"], int)
            t.note("pids", str(stats["data"]["pids"]["current"]))
            check("kill paused", "kill", "p", "TERM")
            check("resume", "resume", "p")
            status = _reap(pid)
            rest = lines.read()
        assert rest == "got TERM\n"
        assert status is not None and os.waitstatus_to_exitcode(status) == 9
        check("resume stopped", "resume", "p")
        check("delete", "delete", "p")

    _compare(runc, runpsc, each)



PIDS = ["sh", "-c", "echo ready; read x; (true) && echo forked"]


@pytest.mark.parametrize("raise_limit", [False, True])
def test_pids_limit_and_update_match_runc(runpsc: Runtime, runc: Runtime, bundle: Path,
                                          tmp_path: Path, raise_limit: bool) -> None:
    """linux.resources.pids.limit: a fork beyond it fails with EAGAIN (busybox sh gives up
    with status 2); `update --pids-limit` raises it in a running container."""
    cfg = read_config(bundle)
    cfg["process"]["args"] = PIDS
    cfg.setdefault("linux", {})["resources"] = {"pids": {"limit": 1}}
    write_config(bundle, cfg)
    seen: dict[str, tuple[Any, ...]] = {}
    for rt in (runc, runpsc):
        r, w = os.pipe()
        r_in, w_in = os.pipe()
        pid = _created(rt, bundle, "n", tmp_path, stdin=r_in, stdout=w, stderr=w)
        os.close(w)
        os.close(r_in)
        rt("start", "n", check=True)
        with os.fdopen(r) as lines, os.fdopen(w_in, "w") as stdin:
            ready = lines.readline()
            updated = rt("update", "--pids-limit", "5", "n").returncode if raise_limit else 0
            stdin.write("\n")
            stdin.flush()
            rest = lines.read()
        status = _reap(pid)
        assert status is not None
        seen["runc" if rt is runc else "runpsc"] = (ready, updated, rest,
                                                     os.waitstatus_to_exitcode(status))
        rt("delete", "n", check=True)
    assert seen["runpsc"] == seen["runc"]
    assert seen["runpsc"][2] == ("forked\n" if raise_limit else
                                 "sh: can't fork: Resource temporarily unavailable\n")


def test_pause_of_a_created_container_matches_runc(runpsc: Runtime, runc: Runtime,
                                                   bundle: Path, tmp_path: Path) -> None:
    """A created container can be paused (runc freezes its waiting init): it shows
    paused, start and exec are refused, resume brings it back to created, start runs it."""

    def each(t: Transcript) -> None:
        rt = t.rt
        r, w = os.pipe()
        pid = _created(rt, bundle, "c", tmp_path, stdout=w)
        os.close(w)
        t.check("pause created", "pause", "c")
        t.note("state", rt.state("c")["status"])
        t.check("pause paused", "pause", "c")
        t.check("start paused", "start", "c")
        t.check("exec paused", "exec", "c", "true")
        t.check("delete paused", "delete", "c")
        t.check("resume", "resume", "c")
        t.note("state", rt.state("c")["status"])
        t.check("start", "start", "c")
        status = _reap(pid)
        assert status is not None
        with os.fdopen(r) as out:
            t.note("output", out.read())
        t.note("status", str(os.waitstatus_to_exitcode(status)))
        t.check("delete", "delete", "c")

    _compare(runc, runpsc, each)


def test_update_memory_matches_runc(runpsc: Runtime, runc: Runtime, bundle: Path,
                                    tmp_path: Path) -> None:
    """`update --memory` sets the limit runc's stats report (memory.usage.limit). In
    runpsc it is the sandbox's memory limit: MemTotal follows it, a tmpfs write past it
    fails, and a limit below what the sandbox holds is refused."""
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    cfg["mounts"].append({"destination": "/big", "type": "tmpfs", "source": "tmpfs",
                          "options": ["size=1g"]})
    write_config(bundle, cfg)

    def each(t: Transcript) -> None:
        rt = t.rt
        r, w = os.pipe()
        pid = _created(rt, bundle, "m", tmp_path, stdout=w)
        os.close(w)
        rt("start", "m", check=True)
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
            for value in ("200M", "300000256", "1g"):
                t.check(f"update {value}", "update", "--memory", value, "m")
                stats = json.loads(rt("events", "--stats", "m", check=True).stdout)
                t.note("limit", str(stats["data"]["memory"]["usage"]["limit"]))
            t.check("update bad", "update", "--memory", "lots", "m")
            if rt is runpsc:
                out = rt("exec", "m", "grep", "MemTotal", "/proc/meminfo", check=True)
                assert out.stdout.split() == ["MemTotal:", str((1 << 30) // 1024), "kB"]
                # Above what its processes hold, below the tmpfs's own size.
                rt("update", "--memory", "100M", "m", check=True)
                out = rt("exec", "m", "sh", "-c", "while cat /bin/busybox >> /big/x; do "
                         ":; done; wc -c < /big/x")
                # The tmpfs write (ENOSPC) or the next cat's memory (ENOMEM) hits the limit.
                assert ("No space left on device" in out.stderr
                        or "Cannot allocate memory" in out.stderr), out
                assert 0 < int(out.stdout) < 100 << 20
                out = rt("update", "--memory", "4096", "m")
                assert out.returncode == 1
                assert "unable to set memory limit to 4096" in _message(out.stderr)
            rt("kill", "m", "KILL", check=True)
            _reap(pid)
        t.check("delete", "delete", "m")

    _compare(runc, runpsc, each)


def test_a_root_and_id_longer_than_a_socket_address(bundle: Path, tmp_path: Path) -> None:
    """Docker's --root (EXEC_ROOT/runtime-runc/moby) and 64-character IDs make ROOT/ID/
    control.sock longer than an AF_UNIX address holds: start, exec, kill still reach the
    container."""
    rt = Runtime(runpsc_argv(), tmp_path / ("r" * 60) / "runtime-runc" / "moby")
    cid = "c" * 64
    assert len(str(rt.root / cid / "control.sock")) > 108
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)
    try:
        r, w = os.pipe()
        pid = _created(rt, bundle, cid, tmp_path, stdout=w)
        os.close(w)
        rt("start", cid, check=True)
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
            assert rt("exec", cid, "sh", "-c", "exit 4").returncode == 4
            rt("kill", cid, "TERM", check=True)
            status = _reap(pid)
        assert status is not None and os.waitstatus_to_exitcode(status) == 9
        rt("delete", cid, check=True)
    finally:
        _force_delete_all(rt)


#: An exec'd program reporting its terminal's size at start and at each SIGWINCH (the
#: shell's `wait` returns early for a trapped signal).
WINCH = 'trap "stty size" WINCH; stty size; echo ready; sleep 1000 & while :; do wait; done'


def test_exec_tty_window_changes_and_init_spared_match_runc(runpsc: Runtime, runc: Runtime,
                                                            bundle: Path,
                                                            tmp_path: Path) -> None:
    """`exec --tty --console-socket`: a resize of the master the console socket got
    (TIOCSWINSZ, as the shim does it) reaches the program's terminal (SIGWINCH, the new
    size in TIOCGWINSZ); from inside, `kill -9 1` leaves the init alone; `kill ID KILL`
    from the host ends it. As under runc."""
    import fcntl
    import struct
    import termios

    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)

    def each(t: Transcript) -> None:
        rt = t.rt
        r, w = os.pipe()
        pid = _created(rt, bundle, "w1", tmp_path, stdout=w)
        os.close(w)
        rt("start", "w1", check=True)
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
            console = ConsoleSocket(tmp_path / f"{rt.root.name}.sock")
            xpid_file = tmp_path / "tty.pid"
            t.check("exec-tty", "exec", "--detach", "--tty", "--console-socket",
                    str(console.path), "--pid-file", str(xpid_file), "w1", "sh", "-c", WINCH)
            master = console.master()
            term = Reader(master)
            try:
                t.note("start", term.until(b"ready\r\n").decode())
                for rows, cols in ((40, 100), (25, 81)):
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("4H", rows, cols, 0, 0))
                    t.note(f"{rows}x{cols}", term.until(b"\r\n").decode())
                os.write(master, b"\x03")  # ^C: the shell (its foreground group) ends
                xstatus = _reap(int(xpid_file.read_text()))
            finally:
                os.close(master)
            t.note("exec-status", str(xstatus is not None and os.waitstatus_to_exitcode(xstatus)))
            # A console socket without --detach (or without --tty) is refused.
            for extra in (["--tty"], ["--detach"]):
                t.check(f"console-socket {extra}", "exec", *extra, "--console-socket",
                        str(console.path), "w1", "true")
            out = rt("exec", "w1", "sh", "-c", "kill -9 1; echo kill=$?; kill -s SEGV 1; "
                     "echo segv=$?")
            t.note("kill-init-inside", out.stdout + str(out.returncode))
            t.note("still-running", rt.state("w1")["status"])
            t.check("kill", "kill", "w1", "KILL")
            status = _reap(pid)
        t.note("status", str(status is not None and os.waitstatus_to_exitcode(status)))
        t.check("delete", "delete", "w1")

    _compare(runc, runpsc, each)


#: An exec'd program on the caller's terminal: what it is, its size at start, a line typed,
#: its size once the caller's window changed (it then ends with status 3). runc sets the
#: first size just after the program started (runpsc before: consoleSize), so it asks
#: until the terminal has one (busybox's stty prints an error for rows 0).
ON_TERMINAL = ('tty; test -t 0; echo t0=$?; while :; do s=$(stty size 2>&1); case $s in '
               '[1-9]*) break;; esac; done; echo "$s"; echo ready; read x; echo "got=$x"; '
               'trap "stty size; kill \\$!; exit 3" WINCH; sleep 1000 & echo waiting; '
               "while :; do wait; done")


#: The terminal's size, once it has one (see ON_TERMINAL).
SIZE = 'while :; do s=$(stty size 2>&1); case $s in [1-9]*) break;; esac; done; echo "$s"'


def _on_caller_terminal(rt: Runtime, args: list[str], rows: int, cols: int,
                        stdin: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """`rt args` run from a terminal of `rows` x `cols` (its controlling one) whose master
    is returned: stdout and stderr on it, and stdin unless given."""
    import fcntl
    import struct
    import termios

    master, replica = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("4H", rows, cols, 0, 0))
    try:
        p = subprocess.Popen([*rt.argv, "--root", str(rt.root), *args],
                             stdin=replica if stdin is None else stdin, stdout=replica,
                             stderr=replica, start_new_session=True,
                             preexec_fn=lambda: fcntl.ioctl(1, termios.TIOCSCTTY, 0))
    finally:
        os.close(replica)
    return p, master


def test_exec_tty_in_the_foreground_matches_runc(runpsc: Runtime, runc: Runtime, bundle: Path,
                                                 tmp_path: Path) -> None:
    """`exec --tty` without a console socket, in the foreground: the runtime allocates the
    pty and relays the caller's stdio (its terminal raw: the output as the program's pty
    gives it, CRLF), sized like the caller's window at start and after a SIGWINCH, the
    program's exit status its own; stdin may be a pipe; with --detach it is refused."""
    import fcntl
    import struct
    import termios

    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    write_config(bundle, cfg)

    def each(t: Transcript) -> None:
        rt = t.rt
        r, w = os.pipe()
        pid = _created(rt, bundle, "tty1", tmp_path, stdout=w)
        os.close(w)
        rt("start", "tty1", check=True)
        with os.fdopen(r) as lines:
            assert lines.readline() == "ready\n"
        p, master = _on_caller_terminal(rt, ["exec", "--tty", "tty1", "sh", "-c", ON_TERMINAL],
                                        33, 77)
        term = Reader(master)
        try:
            t.note("start", term.until(b"ready\r\n").decode())
            os.write(master, b"hello\n")
            t.note("line", term.until(b"waiting\r\n").decode())
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("4H", 40, 100, 0, 0))
            t.note("resized", term.rest().decode())
            t.note("status", str(p.wait(timeout=120)))
        finally:
            os.close(master)
        pr, pw = os.pipe()
        p, master = _on_caller_terminal(rt, ["exec", "-t", "tty1", "sh", "-c",
                                             'read x; echo "got=$x"; tty; kill -9 $$'],
                                        24, 80, stdin=pr)
        os.close(pr)
        os.write(pw, b"piped\n")
        os.close(pw)
        try:
            t.note("piped", Reader(master).rest().decode())
            t.note("piped status", str(p.wait(timeout=120)))
        finally:
            os.close(master)
        t.check("detach tty", "exec", "--detach", "--tty", "tty1", "true")
        # No stdio a terminal: the caller's controlling terminal is (/dev/tty); without
        # one the exec fails before the program starts.
        master, replica = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("4H", 21, 61, 0, 0))
        try:
            out = rt("exec", "-t", "tty1", "sh", "-c", SIZE, stdin=subprocess.DEVNULL,
                     start_new_session=True,
                     preexec_fn=lambda: fcntl.ioctl(replica, termios.TIOCSCTTY, 0))
        finally:
            os.close(replica)
            os.close(master)
        t.note("controlling terminal", f"{out.returncode} {out.stdout!r}")
        out = rt("exec", "-t", "tty1", "true", stdin=subprocess.DEVNULL, start_new_session=True)
        t.note("no terminal", f"{out.returncode} {_message(out.stderr)}")
        t.check("not found", "exec", "tty1", "nonexistent")
        t.check("kill", "kill", "tty1", "KILL")
        _reap(pid)
        t.check("delete", "delete", "tty1")

    got = _compare(runc, runpsc, each)
    assert got[:6] == [
        ("start", 0, "/dev/pts/0\r\nt0=0\r\n33 77\r\nready\r\n"),
        ("line", 0, "hello\r\ngot=hello\r\nwaiting\r\n"),
        ("resized", 0, "40 100\r\n"),
        ("status", 0, "3"),
        ("piped", 0, "piped\r\ngot=piped\r\n/dev/pts/0\r\n"),
        ("piped status", 0, "137"),
    ], got
    assert got[6][1:] == (255, "exec failed: cannot allocate tty if RUNTIME will detach "
                               "without setting console socket"), got
    assert got[7:9] == [("controlling terminal", 0, "0 '21 61\\n'"),
                        ("no terminal", 0, "255 exec failed: open /dev/tty: no such device or "
                                           "address")], got


def _cgroup_lines(pid: int) -> list[str]:
    """/proc/PID/cgroup, each line's hierarchy and path, sorted."""
    return sorted(line.split(":", 1)[1] for line in Path(f"/proc/{pid}/cgroup").read_text()
                  .splitlines())


def _cgroup_mounts() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")]


def test_cgroups_path_holds_the_container_as_runc(runpsc: Runtime, runc: Runtime,
                                                  bundle: Path, tmp_path: Path) -> None:
    """`create` puts the pid-file process in linux.cgroupsPath in every hierarchy, with
    cpu.shares written; `update --cpu-share` changes it; `exec`'s pid-file process is there
    too; `delete --force` removes the directories."""
    cfg = read_config(bundle)
    cfg["process"]["args"] = WAIT
    name = f"oci-cli-cg-{os.getpid()}"
    cfg.setdefault("linux", {})["cgroupsPath"] = f"/{name}"
    cfg["linux"]["resources"] = {"cpu": {"shares": 512}}
    write_config(bundle, cfg)
    seen: dict[str, tuple[Any, ...]] = {}
    for rt in (runc, runpsc):
        pid = _created(rt, bundle, "g", tmp_path, stdout=subprocess.DEVNULL)
        lines = _cgroup_lines(pid)
        shares = Path(f"/sys/fs/cgroup/cpu/{name}/cpu.shares").read_text()
        rt("update", "--cpu-share", "256", "g", check=True)
        updated = Path(f"/sys/fs/cgroup/cpu/{name}/cpu.shares").read_text()
        rt("start", "g", check=True)
        epid_file = tmp_path / "exec.pid"
        rt("exec", "--detach", "--pid-file", str(epid_file), "g", "sleep", "1000",
           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        epid = int(epid_file.read_text())
        exec_lines = _cgroup_lines(epid)
        os.kill(epid, signal.SIGKILL)  # ends the exec'd program (under runpsc too)
        _reap(epid)  # before delete: runc's, whose init waits for it to be reaped
        rt("delete", "--force", "g", check=True)
        _reap(pid)
        left = [m for m in _cgroup_mounts() if os.path.exists(f"{m}/{name}")]
        seen["runc" if rt is runc else "runpsc"] = (lines, exec_lines, shares, updated, left)
    assert seen["runpsc"] == seen["runc"]
    assert all(line.endswith(f":/{name}") for line in seen["runpsc"][0])
    assert seen["runpsc"][1:] == (seen["runpsc"][0], "512\n", "256\n", [])
