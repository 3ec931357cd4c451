"""AF_INET/AF_INET6 sockets served by host sockets in the sandbox's network namespace,
compared with Linux: progs/inet.c natively in a fresh network namespace whose lo is up
(what the sandbox's default `none` mode is) and in the Sentry; raw and packet sockets
against a native run without CAP_NET_RAW; 10,000 connections without a leak."""

from __future__ import annotations

import gc
import os

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_binary, need_root


def _in_fresh_netns(prog: str, *args: str) -> list[str]:
    need_binary("unshare", "util-linux")
    need_binary("ip", "iproute2")
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', prog, *args]


def _bad_events(events: list) -> list:
    return [e for e in events if e[0] in ("internal-error", "unsupported-syscall")]


async def test_inet_matches_linux(tmp_path):
    need_root()
    prog = build(tmp_path, "inet")
    want = native(_in_fresh_netns(prog))
    assert want.code == 0 and b"tcp6 mapped peer ::ffff:127.0.0.1" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
    assert not _bad_events(got.events)


async def test_raw_and_packet_sockets_are_eperm_as_without_cap_net_raw(tmp_path):
    need_root()
    setpriv = need_binary("setpriv", "util-linux")
    prog = build(tmp_path, "inet_refused")
    want = native([setpriv, "--bounding-set=-net_raw", "--inh-caps=-net_raw", prog])
    assert b"packet: Operation not permitted" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode()
    refused = [f for e, f in got.events if e == "unsupported-socket"]
    assert {f["name"] for f in refused} >= {"SOCK_RAW", "AF_PACKET"}


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _host_sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


async def test_ten_thousand_connections_leave_nothing_behind(tmp_path):
    """The Sentry's fds, its host sockets and its socket objects come back to their level
    after 10,000 connections opened and closed; its memory grows by less than 16 MiB."""
    need_root()
    from sentry.socket.hostsocket import HostSocket

    prog = build(tmp_path, "inet_churn")
    warm = await sentry_run([prog, "200"])
    assert warm.stdout == b"200 connections\n", warm.stderr
    del warm
    gc.collect()
    fds, socks = _fds(), _host_sockets()
    rss = _rss()
    got = await sentry_run([prog, "10000"])
    assert got.stdout == b"10000 connections\n", got.stderr
    assert not _bad_events(got.events)
    assert len(got.kernel.network.sockets) == 0
    del got
    gc.collect()
    assert _fds() == fds
    assert _host_sockets() == socks
    assert not [o for o in gc.get_objects() if isinstance(o, HostSocket)]
    assert _rss() - rss < 16 << 20


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def test_ping_sockets_and_urgent_data_match_linux(tmp_path):
    """Ping sockets where the namespace allows them (the sandbox's own namespace lets every
    group ping; natively the same sysctl is set in the fresh namespace); MSG_OOB goes to
    the host socket, as Linux sends it (progs/sigio.c reads it back, with SIGURG)."""
    need_root()
    prog = build(tmp_path, "inet_ping")
    want = native(["unshare", "-n", "sh", "-c",
                   "ip link set lo up && echo 0 2147483647 > "
                   "/proc/sys/net/ipv4/ping_group_range && exec \"$0\"", prog])
    assert b"ping4 reply: 12 type 0 seq 7 from 127.0.0.1 data ping" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert want.stdout.decode().splitlines()[-1] == "oob send: sent"
    assert not any(e == "unsupported-socket" and "MSG_OOB" in f["name"]
                   for e, f in got.events)


async def test_sigio_and_socket_timeouts_match_linux(tmp_path):
    """progs/sigio.c: F_SETOWN(_EX)/F_SETSIG/O_ASYNC on pipes, unix and TCP/UDP sockets
    (SIGIO, the F_SETSIG signal's si_code/si_band/si_fd, SIGURG for urgent data,
    SIOCATMARK), and socket calls with SO_RCVTIMEO/SO_SNDTIMEO cut short by an SA_RESTART
    handler (EINTR, not restarted; restarted without a timeout), against a fresh
    namespace."""
    need_root()
    prog = build(tmp_path, "sigio")
    want = native(_in_fresh_netns(prog))
    assert want.code == 0 and b"udp datagram: RT1 POLL_IN" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
    assert not _bad_events(got.events)


async def test_timed_socket_call_stopped_and_continued_is_eintr_as_linux(tmp_path):
    """socket(7): a recv with SO_RCVTIMEO set, stopped (SIGSTOP) and continued, returns
    EINTR; without a timeout it is restarted (progs/sigio.c stop, over a root with /proc,
    which tells the parent its child sleeps in the call)."""
    from .test_procfs import run_with_proc

    prog = build(tmp_path, "sigio")
    want = native([prog, "stop"])
    assert want.code == 0 and b"with a timeout: -1 EINTR" in want.stdout, want.stderr
    status, out, k = await run_with_proc(["/sigio", "stop"], {"/sigio": prog})
    assert out.decode() == want.stdout.decode(), k.events
    assert status == want.status


async def test_peek_offsets_queues_and_inet_cmsgs_match_linux(tmp_path):
    """progs/sock_peek.c (SO_PEEK_OFF on unix stream/dgram/seqpacket and through to the
    host's TCP/UDP; FIONREAD/SIOCINQ/SIOCOUTQ on unix, TCP and UDP) and progs/inet_cmsg.c
    (IP_RECVTTL/TOS, IP_PKTINFO, SO_TIMESTAMP(NS), IPV6_RECVHOPLIMIT/TCLASS, per-packet
    cmsgs on send, unknown ones EINVAL, MSG_CTRUNC), against a fresh namespace."""
    need_root()
    for name, sign in (("sock_peek", b"udp peek 10"), ("inet_cmsg", b"v6 cmsg hoplimit")):
        prog = build(tmp_path, name)
        want = native(_in_fresh_netns(prog))
        assert want.code == 0 and sign in want.stdout, want.stderr
        got = await sentry_run([prog])
        assert got.stdout.decode() == want.stdout.decode(), got.events
        assert got.status == want.status
        assert not _bad_events(got.events)


async def test_interface_ioctls_match_linux(tmp_path):
    """SIOCGIFINDEX and SIOCGIFNAME on AF_UNIX, AF_INET and AF_INET6 sockets (glibc's
    if_nametoindex/if_indextoname), with ENODEV and EFAULT, against a fresh namespace."""
    need_root()
    prog = build(tmp_path, "ifioctl")
    want = native(_in_fresh_netns(prog))
    assert want.code == 0 and b"if_indextoname 1 lo" in want.stdout, want.stderr
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status
    assert not _bad_events(got.events)
