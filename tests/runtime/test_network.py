"""Network modes under `runpsc do`, compared with Linux: `none` (a namespace with only lo,
up: the native twin is `unshare -n` with lo brought up), `host` (the host's interfaces: the
native twin is the same command on the host), `sandbox` (slirp4netns: outbound NAT and
published ports only), and the TCP programs of issue 16 inside the sandbox: python's
http.server with urllib, netcat-openbsd, socat TCP and UDP relays, nginx with curl, redis.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.runtime.test_do import ROOT, runpsc
from tests.support import need_binary, need_root

pytestmark = pytest.mark.root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_ns(script: str) -> subprocess.CompletedProcess:
    """`script` natively in a fresh network namespace whose lo is up (the `none` twin)."""
    return subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up; {script}"],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)


def _sandboxed(script: str, *flags: str) -> subprocess.CompletedProcess:
    return runpsc("do", *flags, "--", "sh", "-c", script)


def test_publish_needs_sandbox_mode():
    got = runpsc("do", "--network", "host", "--publish", "8080:80", "--", "true")
    assert got.returncode == 2 and b"--publish needs --network sandbox" in got.stderr


def test_ip_addr_and_route_in_none_mode_match_a_fresh_namespace():
    need_root()
    need_binary("ip", "iproute2")
    script = "ip addr; ip route; ip -6 route; ip link; ip -br addr"
    want = _fresh_ns(script)
    got = _sandboxed(script)
    assert want.returncode == 0, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0


def test_ip_addr_in_host_mode_matches_the_host():
    need_root()
    need_binary("ip", "iproute2")
    script = "ip -br addr; ip -br link; ip route"
    want = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60)
    got = _sandboxed(script, "--network", "host")
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == want.returncode == 0


def test_interface_changes_are_refused():
    """RTM_NEWADDR from the sandbox: EPERM in an NLMSG_ERROR, as for an unprivileged
    process; the namespace keeps its address list."""
    need_root()
    need_binary("ip", "iproute2")
    got = _sandboxed("ip addr add 10.9.9.9/24 dev lo; echo status $?; ip -br addr")
    assert b"RTNETLINK answers: Operation not permitted" in got.stderr
    assert b"status 2" in got.stdout and b"10.9.9.9" not in got.stdout


def test_getifaddrs_and_if_nameindex_match():
    need_root()
    code = ("import socket; print(socket.if_nameindex());"
            "print(sorted({a[4][0] for a in socket.getaddrinfo('localhost', 80, "
            "flags=socket.AI_ADDRCONFIG)}))")
    want = _fresh_ns(f"python3 -c \"{code}\"")
    got = runpsc("do", "--", "python3", "-c", code)
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert want.returncode == got.returncode == 0


HTTP_SCRIPT = r"""
import http.server, threading, urllib.request, os
os.chdir("/usr/share/doc/python3")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
srv.RequestHandlerClass.log_message = lambda *a: None
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
for path in ("/copyright", "/", "/missing"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
            body = r.read()
            print(path, r.status, len(body), body[:40])
    except urllib.error.HTTPError as e:
        print(path, e.code)
srv.shutdown()
"""


def test_python_http_server_and_urllib_inside():
    need_root()
    want = _fresh_ns(f"python3 -c '{HTTP_SCRIPT}'")
    got = runpsc("do", "--", "python3", "-c", HTTP_SCRIPT)
    assert want.returncode == 0, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0


def _serve(flags: list[str], port: int, directory: str) -> subprocess.Popen:
    """python3 -m http.server PORT under runpsc; returns once it printed its banner."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "do", *flags, "--", "python3", "-u", "-m",
         "http.server", str(port), "--directory", directory],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert b"Serving HTTP" in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    # SIGINT: python's handler runs (the sandbox's init takes no SIGTERM it has no
    # handler for, as the init of a pid namespace)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_host_mode_server_reached_from_the_host():
    need_root()
    port = _free_port()
    proc = _serve(["--network", "host"], port, "/usr/share/doc/python3")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/copyright", timeout=30) as r:
            body = r.read()
        assert body == Path("/usr/share/doc/python3/copyright").read_bytes()
    finally:
        _stop(proc)


def _listening_ports(pid: int) -> set[int]:
    """TCP ports the host process `pid` listens on (its socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def test_sandbox_mode_publishes_only_what_is_asked():
    """A published port reaches the sandbox's server from the host; the sandbox's other
    listening port has no host side at all (slirp4netns listens on the published one only),
    and the sandbox does not see the host's loopback services."""
    need_root()
    need_binary("slirp4netns")
    host_port = _free_port()
    proc = _serve(["--network", "sandbox", "--publish", f"{host_port}:8000"], 8000,
                  "/usr/share/doc/python3")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/copyright",
                                    timeout=30) as r:
            assert r.read() == Path("/usr/share/doc/python3/copyright").read_bytes()
        slirp = [int(p) for p in os.listdir("/proc") if p.isdigit()
                 and _comm(int(p)) == "slirp4netns"
                 and _ppid(int(p)) == proc.pid]
        assert len(slirp) == 1
        assert _listening_ports(slirp[0]) == {host_port}
    finally:
        _stop(proc)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == proc.pid]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


CONNECT = ("import socket, sys\n"
           "try:\n"
           "    socket.create_connection(('{host}', {port}), timeout=20).close(); print('connected')\n"
           "except OSError as e:\n"
           "    print(type(e).__name__)\n")


def test_none_mode_does_not_reach_host_loopback():
    need_root()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        code = CONNECT.format(host="127.0.0.1", port=port)
        native = subprocess.run([sys.executable, "-c", code], capture_output=True)
        assert native.stdout == b"connected\n"
        for flags in ([], ["--network", "sandbox"]):
            got = runpsc("do", *flags, "--", "python3", "-c", code)
            assert got.stdout == b"ConnectionRefusedError\n", (flags, got.stderr)


def test_sandbox_mode_reaches_the_host_network():
    """Outbound through slirp4netns: a service on the host's own (non-loopback) address."""
    need_root()
    need_binary("slirp4netns")
    addr = next((a for _, _, _, _, (a, *_) in socket.getaddrinfo(
        socket.gethostname(), None, socket.AF_INET) if not a.startswith("127.")), None)
    if addr is None:
        addr = _first_global_ipv4()
    with socket.socket() as srv:
        srv.bind(("0.0.0.0", 0))
        srv.listen()
        port = srv.getsockname()[1]
        got = runpsc("do", "--network", "sandbox", "--", "python3", "-c",
                     CONNECT.format(host=addr, port=port))
        assert got.stdout == b"connected\n", got.stderr


def _first_global_ipv4() -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert m, out
    return m.group(1)


RELAYS = r"""
nc -l 127.0.0.1 7001 > /tmp/nc.out &
until echo nc-payload | nc -N 127.0.0.1 7001 2>/dev/null; do sleep 0.05; done
wait; cat /tmp/nc.out
socat TCP-LISTEN:7002,bind=127.0.0.1,reuseaddr SYSTEM:'tr a-z A-Z' &
until echo socat-tcp | socat -t 30 - TCP:127.0.0.1:7002 2>/dev/null; do sleep 0.05; done
wait
socat UDP-RECVFROM:7003,bind=127.0.0.1,fork SYSTEM:'tr a-z A-Z' & s=$!
until echo socat-udp | socat -t 3 - UDP:127.0.0.1:7003 2>/dev/null | grep .; do sleep 0.05; done
kill $s; wait
"""


def test_netcat_and_socat_relays():
    need_root()
    need_binary("nc", "netcat-openbsd")
    need_binary("socat")
    want = _fresh_ns(RELAYS)
    got = _sandboxed(RELAYS)
    assert want.stdout == b"nc-payload\nSOCAT-TCP\nSOCAT-UDP\n", want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == want.returncode


NGINX_CONF = """
daemon off; master_process on; worker_processes 2; user root;
error_log stderr error; pid /tmp/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp/nginx-body; proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fcgi; uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  sendfile on;
  server { listen 127.0.0.1:8088; root /tmp/www; }
}
"""

NGINX_SCRIPT = r"""
mkdir -p /tmp/www && seq 1 20000 > /tmp/www/numbers.txt
cat > /tmp/nginx.conf <<'EOF'
""" + NGINX_CONF + r"""
EOF
nginx -c /tmp/nginx.conf & n=$!
until curl -s -o /dev/null http://127.0.0.1:8088/; do sleep 0.05; done
curl -s http://127.0.0.1:8088/numbers.txt | md5sum
curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8088/missing
kill -QUIT $n; wait $n; echo nginx $?
"""


def test_nginx_serves_curl():
    need_root()
    need_binary("nginx", "nginx-light")
    need_binary("curl")
    want = _fresh_ns(NGINX_SCRIPT)
    got = _sandboxed(NGINX_SCRIPT)
    assert want.returncode == 0 and b"404" in want.stdout, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0


REDIS_SCRIPT = r"""
cd /tmp
redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --loglevel warning --logfile /tmp/redis.log & r=$!
until redis-cli -p 6390 ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
redis-cli -p 6390 set greeting hello
redis-cli -p 6390 get greeting
redis-cli -p 6390 incrby counter 41
redis-cli -p 6390 incr counter
redis-benchmark -p 6390 -n 200 -c 4 -q -t set,get > /tmp/bench.txt && grep -c requests /tmp/bench.txt
redis-cli -p 6390 shutdown nosave
wait $r; echo redis $?
"""


def test_redis_server_cli_and_benchmark():
    need_root()
    need_binary("redis-server")
    need_binary("redis-cli", "redis-tools")
    want = _fresh_ns(REDIS_SCRIPT)
    got = _sandboxed(REDIS_SCRIPT)
    assert want.returncode == 0 and b"OK\nhello\n41\n42\n2\n" in want.stdout, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0


def test_ss_and_netstat_show_the_sandbox_listeners():
    need_root()
    need_binary("ss", "iproute2")
    need_binary("netstat", "net-tools")
    script = ("python3 -c 'import socket,os,time\n"
              "s=socket.socket(); s.bind((\"127.0.0.1\",7070)); s.listen()\n"
              "u=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind((\"::1\",7071))\n"
              "os.system(\"ss -tlnH; ss -ulnH; netstat -tln | tail -n +3;"
              " ss -tlnpH | sed s/pid=[0-9]*/pid=N/\")'")
    want = _fresh_ns(script)
    got = _sandboxed(script)
    assert b"127.0.0.1:7070" in want.stdout and b'users:(("python3",pid=N,fd=3))' in \
        want.stdout, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr


ASYNCIO_SCRIPT = r"""
import asyncio
async def handle(r, w):
    while data := await r.readline():
        w.write(data.upper())
        await w.drain()
    w.close()
async def main():
    for host in ("127.0.0.1", "::1"):
        srv = await asyncio.start_server(handle, host, 0, limit=1 << 20)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection(host, port, limit=1 << 20)
        for line in (b"hello\n", b"asyncio over tcp\n", b"x" * 70000 + b"\n"):
            w.write(line)
            await w.drain()
            got = await r.readline()
            print(host, len(got), got[:20])
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
asyncio.run(main())
"""


def test_asyncio_tcp_echo():
    need_root()
    want = _fresh_ns(f"python3 -c '{ASYNCIO_SCRIPT}'")
    got = runpsc("do", "--", "python3", "-c", ASYNCIO_SCRIPT)
    assert want.returncode == 0 and b"::1 70001" in want.stdout, want.stderr
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == 0
