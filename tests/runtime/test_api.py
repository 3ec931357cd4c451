"""The Python API (docs/api.md): `runtime.run`, `runtime.Sandbox`, `runtime.open_sandbox`.

Programs run in the sandbox and natively and their outputs are compared; a sandbox keeps
its files and its kernel across execs; two sandboxes run at the same time (each waits for
a file the other writes, so neither finishes alone), in threads and in one trio run; a
timeout, an exception and ^C leave no process behind (the test process's descendants are
counted before, during and after); every code block of docs/api.md runs.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

import runtime
from tests import leftovers
from tests.support import need_root

ROOT = Path(__file__).resolve().parents[2]

#: Each side announces itself and waits for the other's file: it ends only if both run
#: at once. (A loop on `test -e`: the file comes from another sandbox through the host.)
MEET = "echo > /meet/{me}; while [ ! -e /meet/{other} ]; do sleep 0.01; done; echo {me} met"


def mine() -> set[int]:
    """The test process's descendants now (zombies included)."""
    return leftovers.descendants(os.getpid())


def shown(pids: set[int]) -> dict[int, tuple[str, tuple[int, str] | None]]:
    """What each of `pids` runs, its parent and state (for a failing assertion)."""
    table = leftovers.parents()
    return {p: (leftovers.command_line(p), table.get(p)) for p in pids}


def wait_for(path: Path, stop: threading.Event) -> bool:
    """Whether `path` came to exist (a program in a sandbox creates it on a mounted
    directory) before `stop` was set (the program's exec returned)."""
    while not stop.is_set():
        if path.exists():
            return True
        time.sleep(0.01)
    return False


def test_run_is_like_subprocess_run():
    code = ("import os, sys; print(sys.stdin.read().upper(), os.getcwd(), os.environ['A'],"
            " sorted(k for k in os.environ if k not in ('A', 'PATH', 'LC_CTYPE')));"
            " print('to stderr', file=sys.stderr); sys.exit(4)")
    argv = ["/usr/bin/python3", "-c", code]  # not a PATH shim (pyenv) natively
    got = runtime.run(argv, stdin=b"some input", env={"A": "b"}, cwd="/etc")
    want = subprocess.run(argv, input=b"some input", cwd="/etc", capture_output=True,
                          env={"A": "b", "PATH": os.environ["PATH"]})
    assert isinstance(got, subprocess.CompletedProcess)
    assert (got.args, got.returncode, got.stdout, got.stderr) == (
        argv, want.returncode, want.stdout, want.stderr)
    with pytest.raises(subprocess.CalledProcessError) as e:
        runtime.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=True)
    assert (e.value.returncode, e.value.stdout, e.value.stderr) == (3, b"out\n", b"err\n")
    # killed by a signal: -N, as subprocess reports it (a fault: the first program is the
    # sandbox's init, which a plain `kill -SEGV $$` no longer ends, as in a pid namespace)
    kill = ["/usr/bin/python3", "-c", "import ctypes; ctypes.string_at(0)"]
    assert runtime.run(kill).returncode == subprocess.run(kill).returncode == -11


def test_run_errors():
    with pytest.raises(runtime.SandboxError) as e:
        runtime.run(["/no/such/program"])
    assert e.value.code == 127
    with pytest.raises(runtime.SandboxError) as e:
        runtime.run(["true"], cwd="/no/such/dir")
    assert e.value.code == 125
    before = mine()
    for bad in ({"mounts": ["relative:/x"]}, {"network": "bridge"}, {"memory": "1K"},
                {"tmpfs": ["relative"]}, {"cwd": "relative"}, {"publish": ["8080:80"]},
                {"network": "sandbox", "publish": ["80"]}):
        with pytest.raises(ValueError):
            runtime.run(["true"], **bad)
    assert mine() == before  # refused before anything started


def test_sandbox_keeps_files_and_kernel_across_execs(tmp_path):
    need_root()  # sethostname
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given.txt").write_text("from the host\n")
    with runtime.Sandbox(mounts=[f"{rw}:/out", runtime.Volume(str(ro), "/in", True)],
                         env={"WHO": "sb"}, cwd="/root", tmpfs=["/scratch"],
                         memory="512M") as sb:
        sb.write_file("/root/a.txt", b"written by the API\n")
        r = sb.exec(["sh", "-c", "cat a.txt /in/given.txt; echo $WHO; "
                     "echo by a program > /etc/b.txt; hostname kept; ls -A /scratch"])
        assert (r.returncode, r.stdout, r.stderr) == (
            0, b"written by the API\nfrom the host\nsb\n", b"")
        r = sb.exec(["sh", "-c", "cat /etc/b.txt; hostname; cp /etc/b.txt /out/; "
                     "grep MemTotal /proc/meminfo"], env={"WHO": "ignored"})
        assert r.stdout == b"by a program\nkept\nMemTotal:         524288 kB\n", r.stderr
        assert sb.read_file("/etc/b.txt") == b"by a program\n"
        assert sb.read_file("a.txt") == b"written by the API\n"  # relative to cwd /root
        with pytest.raises(OSError) as e:
            sb.write_file("/in/x", b"x")
        assert e.value.errno == errno.EROFS
        with pytest.raises(FileNotFoundError):
            sb.read_file("/no/such/file")
        net = sb.exec(["python3", "-c", "import socket; print([n for _, n in "
                                        "socket.if_nameindex()])"])
        assert net.stdout == b"['lo']\n", net.stderr
    assert (rw / "b.txt").read_text() == "by a program\n"
    assert not Path("/etc/b.txt").exists() and sorted(os.listdir(ro)) == ["given.txt"]
    with pytest.raises(runtime.SandboxError):
        sb.exec(["true"])


def test_timeout_kills_the_whole_sandbox(tmp_path):
    before = mine()
    during: list[set[int]] = []
    ended = threading.Event()

    def count() -> None:
        if wait_for(tmp_path / "up", ended):
            during.append(mine() - before)
        (tmp_path / "counted").touch()

    t = threading.Thread(target=count)
    t.start()
    with runtime.Sandbox(mounts=[f"{tmp_path}:/v"]) as sb:
        try:
            with pytest.raises(subprocess.TimeoutExpired) as e:
                sb.exec(["sh", "-c", "sleep 1000 & sleep 1000 & echo > /v/up; "
                         "while [ ! -e /v/counted ]; do sleep 0.01; done; echo up; wait"],
                        timeout=30)
        finally:
            ended.set()
            t.join()
        assert e.value.stdout == b"up\n"
        with pytest.raises(runtime.SandboxError, match="closed"):
            sb.exec(["true"])
    # the Sentry process, two gofers, and sh with its two sleeps (stub processes)
    assert len(during[0]) >= 6, during
    assert mine() == before, shown(mine() - before)


def test_an_exception_in_the_block_leaves_nothing():
    before = mine()
    with pytest.raises(ZeroDivisionError), runtime.Sandbox() as sb:
        assert sb.exec(["true"]).returncode == 0
        assert len(mine() - before) >= 2  # the Sentry and the root's gofer
        1 / 0  # noqa: B018 - the exception under test
    assert mine() == before, shown(mine() - before)


def test_ctrl_c_during_an_exec_leaves_nothing(tmp_path):
    before = mine()
    main = threading.get_ident()
    ended = threading.Event()

    def interrupt() -> None:
        if wait_for(tmp_path / "up", ended):
            signal.pthread_kill(main, signal.SIGINT)  # what ^C does to the main thread

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt), runtime.Sandbox(mounts=[f"{tmp_path}:/v"]) as sb:
            sb.exec(["sh", "-c", "sleep 1000 & echo > /v/up; wait"])
    finally:
        ended.set()
        t.join()
    assert mine() == before, shown(mine() - before)


def test_a_killed_caller_leaves_nothing(tmp_path):
    """SIGKILL of the process using a Sandbox, in the middle of an exec: its worker (then
    ours: pytest is a subreaper) sees the connection close and ends the whole sandbox."""
    before = mine()
    script = ("import runtime, sys\n"
              "with runtime.Sandbox(mounts=[sys.argv[1] + ':/v']) as sb:\n"
              "    sb.exec(['sh', '-c', 'sleep 1000 & echo > /v/up; wait'])\n")
    caller = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                              stdin=subprocess.DEVNULL)
    gone = threading.Event()
    threading.Thread(target=lambda: (caller.wait(), gone.set()), daemon=True).start()
    assert wait_for(tmp_path / "up", gone), caller.returncode
    workers = [p for p in leftovers.children(caller.pid)
               if "runtime.worker" in leftovers.command_line(p)]
    assert len(workers) == 1, workers
    caller.kill()
    caller.wait()
    os.waitpid(workers[0], 0)  # the worker came to us; it exits once all is torn down
    assert mine() == before, shown(mine() - before)


def test_two_sandboxes_at_once_from_threads(tmp_path):
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    def side(me: str, other: str) -> None:
        results[me] = runtime.run(["sh", "-c", MEET.format(me=me, other=other)],
                                  mounts=[f"{tmp_path}:/meet"], timeout=120)

    threads = [threading.Thread(target=side, args=p) for p in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: (r.returncode, r.stdout) for k, r in results.items()} == {
        "a": (0, b"a met\n"), "b": (0, b"b met\n")}


def test_two_sandboxes_in_one_trio_run(tmp_path):
    before = mine()

    async def main() -> list[bytes]:
        out: list[bytes] = []
        async with runtime.open_sandbox(mounts=[f"{tmp_path}:/meet"]) as a, \
                runtime.open_sandbox(mounts=[f"{tmp_path}:/meet"]) as b:
            await a.write_file("/root/mine", b"a's\n")

            async def side(sb: runtime.AsyncSandbox, me: str, other: str) -> None:
                r = await sb.exec(["sh", "-c", MEET.format(me=me, other=other)], timeout=120)
                out.append(r.stdout)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, a, "a", "b")
                nursery.start_soon(side, b, "b", "a")
            out.append((await a.exec(["cat", "/root/mine"])).stdout)
            out.append((await b.exec(["cat", "/root/mine"])).stderr)
            with pytest.raises(subprocess.TimeoutExpired):
                await b.exec(["sleep", "1000"], timeout=0.5)
            assert b.closed and not a.closed
            out.append((await a.exec(["echo", "a lives on"])).stdout)
        return out

    got = trio.run(main)
    assert sorted(got[:2]) == [b"a met\n", b"b met\n"]
    assert got[2:] == [b"a's\n", b"cat: /root/mine: No such file or directory\n",
                       b"a lives on\n"]
    assert mine() == before, shown(mine() - before)


def test_trio_files_while_a_program_runs():
    """write_file and read_file while an exec runs (a handshake through the sandbox's
    files); a second exec meanwhile is refused."""

    async def main() -> subprocess.CompletedProcess[bytes]:
        async with runtime.open_sandbox() as sb:
            result: list[subprocess.CompletedProcess[bytes]] = []

            async def program() -> None:
                result.append(await sb.exec(["sh", "-c", "echo > /root/up; while [ ! -e "
                                             "/root/go ]; do sleep 0.01; done; cat /root/go"],
                                            timeout=120))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(program)
                while not result:  # (the program ending early would be a failure below)
                    try:
                        await sb.read_file("/root/up")
                        break
                    except FileNotFoundError:
                        await trio.sleep(0.01)
                with pytest.raises(runtime.SandboxError, match="one program at a time"):
                    await sb.exec(["true"])
                await sb.write_file("/root/go", b"went\n")
            return result[0]

    got = trio.run(main)
    assert (got.returncode, got.stdout, got.stderr) == (0, b"went\n", b"")


def test_asyncio_runs_sandboxes_in_threads(tmp_path):
    async def main() -> list[subprocess.CompletedProcess[bytes]]:
        return await asyncio.gather(*(
            asyncio.to_thread(runtime.run, ["sh", "-c", MEET.format(me=me, other=other)],
                              mounts=[f"{tmp_path}:/meet"], timeout=120)
            for me, other in (("a", "b"), ("b", "a"))))

    got = asyncio.run(main())
    assert [(r.returncode, r.stdout) for r in got] == [(0, b"a met\n"), (0, b"b met\n")]


def test_the_api_is_typed_and_documented():
    assert (ROOT / "runtime" / "py.typed").exists()
    for name in runtime.__all__:
        obj = getattr(runtime, name)
        assert obj.__doc__, name
        assert name in (runtime.__doc__ or ""), name


def api_examples() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


@pytest.mark.parametrize("n", range(len(api_examples())))
def test_docs_api_examples_run(n):
    before = mine()
    got = subprocess.run([sys.executable, "-c", api_examples()[n]], cwd=ROOT,
                         capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert mine() == before, shown(mine() - before)


#: A one-shot server in the sandbox: answers "ping" on port 8000, then exits.
PONG = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000))
s.listen()
while True:
    c, _ = s.accept()
    if c.recv(4) == b"ping":
        c.sendall(b"pong from " + socket.gethostname().encode())
        c.close()
        break
    c.close()
print("served")
"""


def test_publish_reaches_a_server_in_the_sandbox():
    """`publish=` (network="sandbox"): a host port forwarded by slirp4netns to a server
    running in the sandbox. Until that server listens, slirp4netns accepts and closes each
    connection; the host retries until it answers (or its exec ends)."""
    import socket

    from tests.support import need_binary

    need_root()
    need_binary("slirp4netns")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with runtime.Sandbox(network="sandbox", publish=[runtime.Publish.parse(f"{port}:8000")],
                         ) as sb:
        results: list[subprocess.CompletedProcess[bytes]] = []
        served = threading.Event()

        def server() -> None:
            try:
                results.append(sb.exec(["/usr/bin/python3", "-c", PONG], timeout=120))
            finally:
                served.set()

        t = threading.Thread(target=server)
        t.start()
        got = b""
        while not got and not served.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
                    c.sendall(b"ping")
                    got = c.recv(100)
            except ConnectionError:  # reset: nothing listens in the sandbox yet
                pass
            if not got:
                served.wait(0.05)
        t.join()
        hostname = sb.exec(["hostname"]).stdout.strip()
    assert got == b"pong from " + hostname
    assert (results[0].returncode, results[0].stdout) == (0, b"served\n"), results
