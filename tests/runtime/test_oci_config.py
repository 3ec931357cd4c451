"""config.json's settings as the program sees them, under runpsc and under runc (Debian's)
on the same bundle: user and groups, rlimits, no_new_privs, hostname, cwd (made when
missing), umask, env, a read-only root, read-only and writable bind mounts, a tmpfs; a
network namespace given by path (made with `ip netns add` and a veth pair); and the hooks,
run on the host with the container's state."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.oci_support import make_bundle, read_config, runpsc_argv, write_config
from tests.support import need_binary, need_root

SCRIPT = """
id; ulimit -n; ulimit -Hn; hostname; grep NoNewPrivs /proc/self/status; pwd; umask
echo "FOO=$FOO"
touch /newfile; touch /data/x; echo hi > /rw/f && cat /rw/f
touch /scratch/x && echo scratch-ok; grep " /scratch " /proc/self/mounts | cut -d" " -f2,3
ls /data
"""


def _run(argv: list[str], root: Path, bundle: Path, cid: str) -> tuple[int, str]:
    out = subprocess.run([*argv, "--root", str(root), "run", "--bundle", str(bundle), cid],
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def _bundle(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    data = tmp_path / f"{name}-data"
    data.mkdir()
    (data / "from-host").write_text("x")
    rw = tmp_path / f"{name}-rw"
    rw.mkdir()
    rw.chmod(0o777)
    bundle = make_bundle(tmp_path / name, ["sh", "-c", SCRIPT])
    cfg = read_config(bundle)
    cfg["process"].update(
        user={"uid": 1000, "gid": 1000, "additionalGids": [20, 30], "umask": 0o027},
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 300}],
        noNewPrivileges=True, cwd="/work/here", env=["PATH=/bin", "FOO=bar baz"])
    cfg["hostname"] = "oci-box"
    cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(data),
         "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": str(rw), "options": ["rbind", "rw"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=1777", "size=1m"]},
        {"destination": "/work", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
    ]
    write_config(bundle, cfg)
    return bundle, data, rw


def test_process_and_mounts_as_runc_gives_them(tmp_path: Path) -> None:
    need_root()
    runc = need_binary("runc")
    results = {}
    for name, argv in (("runc", [runc]), ("runpsc", runpsc_argv())):
        bundle, data, rw = _bundle(tmp_path, name)
        results[name] = _run(argv, tmp_path / f"{name}-root", bundle, "cfg")
        assert (rw / "f").read_text() == "hi\n"  # the writable bind mount reached the host
        assert os.listdir(data) == ["from-host"]
    assert results["runpsc"] == results["runc"]
    code, text = results["runpsc"]
    assert "uid=1000 gid=1000 groups=20,30" in text and "oci-box" in text, text


def test_hooks_run_on_the_host_with_the_state(tmp_path: Path) -> None:
    need_root()
    runc = need_binary("runc")
    seen: dict[str, Any] = {}
    for name, argv in (("runc", [runc]), ("runpsc", runpsc_argv())):
        out = tmp_path / f"{name}-hooks"
        out.mkdir()
        bundle = make_bundle(tmp_path / name, ["true"])
        cfg = read_config(bundle)
        cfg["hooks"] = {h: [{"path": "/bin/sh",
                             "args": ["sh", "-c", f'cat > {out}/{h}.json; echo "$X" > '
                                                  f'{out}/{h}.env', h],
                             "env": ["X=from-env"]}]
                        for h in ("prestart", "createRuntime", "poststart", "poststop")}
        write_config(bundle, cfg)
        code, text = _run(argv, tmp_path / f"{name}-root", bundle, "hk")
        assert code == 0, text
        got = {}
        for f in sorted(out.glob("*.json")):
            st = json.loads(f.read_text())
            got[f.stem] = (st["id"], st["status"], st["bundle"] == str(bundle),
                           (out / f"{f.stem}.env").read_text())
        seen[name] = got
    assert seen["runpsc"] == seen["runc"]
    assert set(seen["runpsc"]) == {"prestart", "createRuntime", "poststart", "poststop"}


@pytest.mark.parametrize("mode", ["none", "host"])
def test_network_annotation(tmp_path: Path, mode: str) -> None:
    """runpsc.network: none gives only lo; host the host's interfaces."""
    need_root()
    bundle = make_bundle(tmp_path / "b", ["cat", "/proc/net/dev"])
    cfg = read_config(bundle)
    cfg["annotations"] = {"runpsc.network": mode}
    write_config(bundle, cfg)
    code, text = _run(runpsc_argv(), tmp_path / "root", bundle, "net")
    assert code == 0, text
    names = sorted(line.split(":")[0].strip() for line in text.splitlines()[2:])
    if mode == "none":
        assert names == ["lo"]
    else:
        with open("/proc/net/dev") as f:
            assert names == sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


FILE_BINDS = """
cat /etc/hosts /etc/hostname /new/dir/conf
echo added >> /etc/hosts && echo hosts-written
echo x >> /etc/hostname 2>/dev/null || echo hostname-read-only
ls /etc; ls /new/dir
busybox rm /etc/hosts 2>&1; busybox mv /etc/hostname /etc/h2 2>&1
grep -E " /etc/host(s|name) " /proc/self/mounts | cut -d" " -f2,4 | cut -d, -f1
"""


def test_single_file_binds_as_runc_gives_them(tmp_path: Path) -> None:
    """Docker's binds of single files (/etc/hosts, /etc/hostname, ...): only the file is
    seen (not its directory's other files), made when missing, written through to the host
    unless read-only, not removable (EBUSY); a symlink as the source is followed."""
    need_root()
    runc = need_binary("runc")
    results = {}
    for name, argv in (("runc", [runc]), ("runpsc", runpsc_argv())):
        host = tmp_path / f"{name}-files"
        host.mkdir()
        (host / "hosts").write_text("127.0.0.1 localhost\n")
        (host / "hostname").write_text("box\n")
        (host / "secret").write_text("not for the container\n")
        (host / "real-conf").write_text("conf\n")
        (host / "conf-link").symlink_to("real-conf")
        bundle = make_bundle(tmp_path / name, ["sh", "-c", FILE_BINDS])
        cfg = read_config(bundle)
        cfg["root"]["readonly"] = False  # removing a mount point: EBUSY, not EROFS
        cfg["mounts"] += [
            {"destination": "/etc/hosts", "type": "bind", "source": str(host / "hosts"),
             "options": ["rbind", "rprivate"]},
            {"destination": "/etc/hostname", "type": "bind", "source": str(host / "hostname"),
             "options": ["rbind", "ro"]},
            {"destination": "/new/dir/conf", "type": "bind", "source": str(host / "conf-link"),
             "options": ["bind"]},
        ]
        write_config(bundle, cfg)
        results[name] = _run(argv, tmp_path / f"{name}-root", bundle, "files")
        assert (host / "hosts").read_text() == "127.0.0.1 localhost\nadded\n"
        assert (host / "hostname").read_text() == "box\n"
    assert results["runpsc"] == results["runc"]
    code, text = results["runpsc"]
    assert code == 0 and "hosts-written" in text and "secret" not in text, text


#: Docker's default capabilities, less CAP_CHOWN.
DOCKER_CAPS = ["CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

RESTRICTED = """
grep -E "Cap(Inh|Prm|Eff|Bnd)" /proc/self/status
touch /tmp/f; chown 5 /tmp/f; echo chown=$?
cat /etc/secret; echo x > /etc/secret; cat /etc/secret; ls /hidden; touch /hidden/x
touch /frozen/x; cat /frozen/f
echo 1 > /proc/sys/kernel/hostname; cat /proc/sys/kernel/ostype
"""


@pytest.mark.parametrize("user", ["root", "uid1000-ambient", "no-capabilities"])
def test_capabilities_masked_and_readonly_paths_as_runc(tmp_path: Path, user: str) -> None:
    """process.capabilities: the sets the program has once exec'd (uid 0: bounding |
    inheritable | ambient; another uid: its ambient set; none given: none at all), and
    what they allow (chown without CAP_CHOWN: EPERM); linux.maskedPaths (/dev/null over a
    file, an empty read-only tmpfs over a directory, a missing path skipped) and
    linux.readonlyPaths (a directory of the rootfs, /proc/sys)."""
    need_root()
    runc = need_binary("runc")
    results = {}
    for name, argv in (("runc", [runc]), ("runpsc", runpsc_argv())):
        bundle = make_bundle(tmp_path / name, ["sh", "-c", RESTRICTED])
        rootfs = bundle / "rootfs"
        (rootfs / "etc" / "secret").write_text("secret\n")
        for d in ("hidden", "frozen"):
            (rootfs / d).mkdir()
            (rootfs / d / "f").write_text(f"in {d}\n")
        cfg = read_config(bundle)
        cfg["root"]["readonly"] = False
        if user == "no-capabilities":
            del cfg["process"]["capabilities"]
        elif user == "root":
            cfg["process"]["capabilities"] = {
                k: DOCKER_CAPS for k in ("bounding", "effective", "permitted", "inheritable")}
        else:
            cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
            cfg["process"]["capabilities"] = {
                **{k: DOCKER_CAPS for k in ("bounding", "effective", "permitted",
                                             "inheritable")},
                "ambient": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]}
        cfg["linux"]["maskedPaths"] += ["/etc/secret", "/hidden", "/nonexistent"]
        cfg["linux"]["readonlyPaths"] += ["/frozen", "/nonexistent/either"]
        write_config(bundle, cfg)
        results[name] = _run(argv, tmp_path / f"{name}-root", bundle, "caps")
    assert results["runpsc"] == results["runc"]
    code, text = results["runpsc"]
    assert "in hidden" not in text and "secret" not in text and "in frozen" in text, text
    assert "/frozen/x: Read-only file system" in text


class _WhoAsks(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the address the request came from."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"hello {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_network_namespace_path_is_the_sandboxs_network(tmp_path: Path) -> None:
    """linux.namespaces' network `path`: a namespace made by `ip netns add`, with one end of
    a veth pair in it; the container sees its interfaces and reaches a server on the host's
    end, which sees the namespace's address, under runpsc as under runc."""
    need_root()
    runc = need_binary("runc")
    ip = need_binary("ip", "iproute2")
    name = f"rpsc{os.getpid() % 100000}"
    host_if, ns_if = f"{name}h", "eth7"
    host_addr, ns_addr = "10.231.77.1", "10.231.77.2"

    def sh(*args: str) -> None:
        subprocess.run([ip, *args], check=True, capture_output=True, timeout=30)

    sh("netns", "add", name)
    server = None
    try:
        sh("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        sh("addr", "add", f"{host_addr}/30", "dev", host_if)
        sh("link", "set", host_if, "up")
        sh("-n", name, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
        sh("-n", name, "link", "set", ns_if, "up")
        server = http.server.ThreadingHTTPServer((host_addr, 0), _WhoAsks)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        script = (f"ip -o -4 addr | cut -d' ' -f2,7; "
                  f"wget -qO- http://{host_addr}:{server.server_address[1]}/")
        results = {}
        for rt, argv in (("runc", [runc]), ("runpsc", runpsc_argv())):
            bundle = make_bundle(tmp_path / rt, ["sh", "-c", script])
            cfg = read_config(bundle)
            for ns in cfg["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = f"/run/netns/{name}"
            write_config(bundle, cfg)
            results[rt] = _run(argv, tmp_path / f"{rt}-root", bundle, "netns")
        # (lo stays down: neither runtime configures a namespace it is given)
        assert results["runc"] == (0, f"{ns_if} {ns_addr}/30\nhello {ns_addr}\n")
        assert results["runpsc"] == results["runc"]
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        subprocess.run([ip, "netns", "del", name], capture_output=True, timeout=30)
