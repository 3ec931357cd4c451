"""What the OCI tests build for themselves: a busybox rootfs, a bundle, an OCI image archive
(for `ctr image import`, no registry), a rootfs tarball (for `docker import`), a private
containerd and a private dockerd."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import need_binary

BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "sleep", "true", "false", "id", "hostname",
                   "ps", "kill", "env", "pwd", "mkdir", "touch", "tty", "stty", "wc", "test",
                   "grep", "uname", "mount", "cut", "sed", "ip", "wget", "httpd")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE = "runpsc.test/busybox:latest"


def runpsc_argv() -> list[str]:
    """The runpsc command line of this checkout."""
    return [sys.executable, "-m", "runtime.cli"]


def runpsc_binary() -> str:
    """An executable file that is runpsc (what `--runc-binary` names)."""
    path = Path(sys.executable).parent / "runpsc"
    assert path.exists(), path
    return str(path)


def make_rootfs(root: Path) -> Path:
    """A rootfs of busybox-static and its applets as symlinks, with /etc/passwd."""
    busybox = need_binary("busybox", "busybox-static")
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for a in BUSYBOX_APPLETS:
        (root / "bin" / a).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "data", "rw", "scratch", "run"):
        (root / d).mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def make_bundle(bundle: Path, args: list[str], **process: Any) -> Path:
    """A bundle with a busybox rootfs and `runpsc spec`'s config, running `args`."""
    from runtime.oci.spec import default_spec

    make_rootfs(bundle / "rootfs")
    doc = default_spec(terminal=False)
    doc["process"]["args"] = args
    doc["process"].update(process)
    write_config(bundle, doc)
    return bundle


def write_config(bundle: Path, doc: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(doc, indent=1))


def read_config(bundle: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return doc


def _add_blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_image_archive(work: Path, name: str = IMAGE) -> Path:
    """An OCI image layout as a tar, one uncompressed layer (the busybox rootfs)."""
    rootfs = make_rootfs(work / "image-rootfs")
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for p in sorted(rootfs.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(rootfs)), recursive=False)
    layer_bytes = layer.getvalue()
    layout = work / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                  **_add_blob(blobs, layer_bytes)}
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [f"PATH={PATH}"], "Cmd": ["sh"], "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_add_blob(blobs, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     **_add_blob(blobs, json.dumps(manifest).encode()),
                     "annotations": {"io.containerd.image.name": name,
                                     "org.opencontainers.image.ref.name": "latest"}}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": [manifest_desc]}))
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    return archive


def make_rootfs_tarball(work: Path) -> Path:
    """The busybox rootfs as a plain tar, what `docker import` turns into an image."""
    rootfs = make_rootfs(work / "docker-rootfs")
    archive = work / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for p in sorted(rootfs.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(rootfs)), recursive=False)
    return archive


def _start_daemon(name: str, argv: list[str], log: Path, tries: int,
                  answers: Callable[[], bool]) -> subprocess.Popen[bytes]:
    """Start a daemon in a session of its own, its output in `log`, and return once
    `answers()` (polled every 50 ms, `tries` times); RuntimeError with its log's tail if it
    exits or never answers."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        if answers():
            return proc
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):  # (the caller never gets it to stop)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")


class Containerd:
    """A containerd of the test's own (config, root, state and socket under `base`)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.address = str(base / "containerd.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "containerd.log"

    def start(self) -> None:
        binary = need_binary("containerd")
        need_binary("ctr", "containerd")
        need_binary("containerd-shim-runc-v2", "containerd")
        cfg = self.base / "config.toml"
        cfg.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\nstate = "{self.base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{self.address}.ttrpc"\n'
            f'[debug]\n  address = "{self.address}.debug"\n'
        )
        # Ready when it answers (`ctr version` waits on the socket itself).
        self.proc = _start_daemon(
            "containerd", [binary, "--config", str(cfg)], self.log, 200,
            lambda: os.path.exists(self.address)
            and self.ctr("version", check=False).returncode == 0)

    def ctr(self, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        out = subprocess.run(["ctr", "--address", self.address, "--namespace", "runpsc-test",
                              *args], capture_output=True, input=input, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {out.returncode}\n"
                                 f"{out.stdout.decode()}{out.stderr.decode()}")
        return out

    def stop(self) -> None:
        """Stop containerd and every shim it left (each in its own session)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in _processes_naming(str(self.base)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["umount", "-R", str(self.base / "state")], capture_output=True)


def _processes_naming(marker: str) -> Iterator[int]:
    """Processes whose command line names `marker` (a test's own directory): what a
    containerd or dockerd of the test left, its shims among them."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and int(d) != os.getpid():
            yield int(d)


class Dockerd:
    """A dockerd of the test's own: data root, exec root (its containerd's too), pid file,
    trust key and unix socket under `base`, no iptables rules, no bridge, the vfs storage
    driver (no overlay mount needed), and runpsc registered as the `runpsc` runtime."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.host = f"unix://{base}/docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "dockerd.log"
        # dockerd makes /run/docker/plugins whatever its exec root (plugin discovery).
        self._run_docker_existed = os.path.exists("/run/docker")

    def start(self) -> None:
        binary = need_binary("dockerd", "docker.io")
        self.client = need_binary("docker", "docker.io")
        cfg = self.base / "daemon.json"
        cfg.write_text(json.dumps({
            "data-root": f"{self.base}/data", "exec-root": f"{self.base}/exec",
            "pidfile": f"{self.base}/docker.pid", "hosts": [self.host],
            "deprecated-key-path": f"{self.base}/key.json",
            "iptables": False, "ip6tables": False, "bridge": "none",
            "storage-driver": "vfs",
            "runtimes": {"runpsc": {"path": runpsc_binary()}},
        }))
        self.proc = _start_daemon(
            "dockerd", [binary, "--config-file", str(cfg)], self.log, 600,
            lambda: (self.base / "docker.sock").exists()
            and self.docker("version", check=False).returncode == 0)

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        out = subprocess.run([self.client, "--host", self.host, *args], capture_output=True,
                             input=input, timeout=timeout, stdin=None if input else
                             subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {out.returncode}\n"
                                 f"{out.stdout.decode()}{out.stderr.decode()}")
        return out

    def stop(self) -> None:
        """Stop dockerd (it stops its containers and its containerd), then whatever shim
        is left, and unmount what is under `base`."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in _processes_naming(str(self.base)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["umount", "-R", str(self.base / "exec")], capture_output=True)
        if not self._run_docker_existed:
            with contextlib.suppress(OSError):
                os.rmdir("/run/docker/plugins")
                os.rmdir("/run/docker")
