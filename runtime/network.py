"""Network modes of a sandbox: `--network none|host|sandbox` and `--publish`, and a
network namespace given by path (`NetworkSetup.joined`, for OCI bundles).

The Sentry's `sentry.kernel.network.Network` is the namespace the program's sockets are
created in; this module makes it for a mode and, for ``sandbox``, attaches slirp4netns to
it: a user-mode NAT giving the namespace a ``tap0`` (10.0.2.100/24, gateway 10.0.2.2, DNS
10.0.2.3) with outbound connectivity, and host ports forwarded to the sandbox only where
`--publish` says (through slirp4netns's API socket, ``add_hostfwd``). The host's own
127.0.0.1 is not reachable from the sandbox (``--disable-host-loopback``).

slirp4netns is stopped by closing its exit fd (and killed if it lingers) in `close()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

__all__ = ["Publish", "NetworkSetup", "NETWORK_MODES"]

NETWORK_MODES = ("none", "host", "sandbox")
#: slirp4netns's default addresses (its --cidr 10.0.2.0/24).
SANDBOX_ADDR = "10.0.2.100"


@dataclass(frozen=True, slots=True)
class Publish:
    """A host port forwarded to a sandbox port (``--publish HOSTPORT:SANDBOXPORT[/tcp|udp]``)."""

    host_port: int
    sandbox_port: int
    proto: str = "tcp"

    @classmethod
    def parse(cls, spec: str) -> Publish:
        """Raises ValueError for anything but `HOSTPORT:SANDBOXPORT[/tcp|/udp]`."""
        ports, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise ValueError(f"publish {spec!r}: protocol must be tcp or udp")
        host, sep, guest = ports.partition(":")
        try:
            hp, gp = int(host), int(guest)
        except ValueError:
            raise ValueError(f"publish {spec!r} is not HOSTPORT:SANDBOXPORT[/tcp|udp]") from None
        if not sep or not (0 < hp < 65536 and 0 < gp < 65536):
            raise ValueError(f"publish {spec!r}: ports are 1-65535")
        return cls(hp, gp, proto)


class NetworkSetup:
    """The network of one sandbox: the Sentry's `Network` plus, in ``sandbox`` mode, the
    slirp4netns process serving it. Make it before the Sentry confines itself (``host``
    mode keeps the namespace the process is in then)."""

    def __init__(self, mode: str, publish: list[Publish] | tuple[Publish, ...] = ()) -> None:
        from sentry.kernel.network import Network, NetworkError

        if mode not in NETWORK_MODES:
            raise ValueError(f"--network {mode!r}: one of {', '.join(NETWORK_MODES)}")
        if publish and mode != "sandbox":
            raise ValueError("--publish needs --network sandbox")
        self.mode = mode
        self.slirp: subprocess.Popen[bytes] | None = None
        self._exit_w = -1
        self._dir: str | None = None
        #: None in ``none`` mode: the Kernel makes its namespace on first use, so a caller
        #: without root still runs programs that use no network.
        self.network: Network | None = None
        if mode == "none":
            return
        try:
            self.network = Network.host() if mode == "host" else Network.isolated(mode)
        except NetworkError as e:
            raise OSError(f"--network {mode}: {e}") from None
        if mode == "sandbox":
            try:
                self._start_slirp()
                for p in publish:
                    self.publish(p)
            except BaseException:
                self.close()
                raise
            # Its API socket and log are needed no more, and the confined Sentry could not
            # remove them at close (runtime/confine.py): gone now.
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    @classmethod
    def joined(cls, path: str) -> NetworkSetup:
        """The network namespace at `path` as the sandbox's (an OCI bundle's
        ``linux.namespaces`` network path): the Sentry's host sockets are made there and
        the confined Sentry lives there, as in the other modes; its interfaces are whoever
        made it's (``ip netns add``, a CNI plugin, another container).

        Raises:
            OSError: `path` is not a network namespace one may enter.
        """
        from sentry.kernel.network import Network

        setup = cls("none")
        setup.mode = "netns"
        setup.network = Network.at(path)
        return setup

    def _start_slirp(self) -> None:
        exe = shutil.which("slirp4netns")
        if exe is None:
            raise OSError("--network sandbox needs slirp4netns (Debian package slirp4netns)")
        self._dir = tempfile.mkdtemp(prefix="runpsc-net-")
        self.api = os.path.join(self._dir, "slirp.sock")
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        os.set_inheritable(self._exit_w, False)
        assert self.network is not None
        ns = self.network.ns_fd
        cmd = [exe, "--configure", "--mtu=65520", "--disable-host-loopback",
               "--netns-type=path", f"--api-socket={self.api}",
               f"--exit-fd={exit_r}", f"--ready-fd={ready_w}", f"/proc/self/fd/{ns}", "tap0"]
        log = os.path.join(self._dir, "slirp.log")
        try:
            with open(log, "wb") as out:
                self.slirp = subprocess.Popen(cmd, pass_fds=(ns, exit_r, ready_w),
                                              stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                              start_new_session=True)
        finally:
            os.close(exit_r)
            os.close(ready_w)
        try:
            ok = os.read(ready_r, 1)
        finally:
            os.close(ready_r)
        if ok != b"1":
            with open(log, "rb") as f:
                err = f.read().decode(errors="replace").strip()
            raise OSError(f"slirp4netns did not start: {err}")

    def _api(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.api)
            s.sendall(json.dumps(request).encode())
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        reply: dict[str, Any] = json.loads(data or b"{}")
        return reply

    def publish(self, p: Publish) -> None:
        """Forward host port `p.host_port` (all host addresses) to the sandbox's port."""
        reply = self._api({"execute": "add_hostfwd", "arguments": {
            "proto": p.proto, "host_addr": "0.0.0.0", "host_port": p.host_port,
            "guest_addr": SANDBOX_ADDR, "guest_port": p.sandbox_port}})
        if "error" in reply:
            desc = reply["error"].get("desc", reply["error"])
            raise OSError(f"--publish {p.host_port}:{p.sandbox_port}/{p.proto}: {desc}")

    def close(self) -> None:
        """Stop slirp4netns and drop the namespace (idempotent)."""
        if self._exit_w >= 0:
            os.close(self._exit_w)  # slirp4netns exits when its exit fd reaches EOF
            self._exit_w = -1
        if self.slirp is not None:
            try:
                self.slirp.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(PermissionError):  # a root caller's confined Sentry
                    self.slirp.kill()
                self.slirp.wait()
            self.slirp = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self.network is not None:
            self.network.close()
