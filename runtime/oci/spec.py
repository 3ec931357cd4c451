"""A bundle's config.json (the OCI runtime spec), read and checked before anything starts.

Why check everything first: a container that fails half-way leaves state, processes and
mounts to clean up; an error found here costs nothing. Every error names the field as a
path into the document (``process.args``, ``mounts[2].destination``) in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpecError", "Spec", "Process", "User", "Mount", "Hook", "Capabilities",
           "load_bundle", "parse_spec", "default_spec", "MOUNT_TYPES", "HOOK_NAMES", "RLIMITS",
           "ANNOTATIONS", "OCI_VERSION", "CAPABILITIES", "memory_limit", "resource_limit"]

OCI_VERSION = "1.0.2"

#: Mount types the sandbox builds (`container.build_mounts` says how).
MOUNT_TYPES = ("bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")

#: The hooks, in the order of a container's life (runc runs them at the same points).
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")

#: RLIMIT_* names -> resource numbers (asm-generic/resource.h).
RLIMITS = {name: i for i, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}

#: Linux's capability names, by number (include/uapi/linux/capability.h).
CAPABILITIES = tuple(f"CAP_{n}" for n in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE"))

#: process.capabilities' sets.
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

#: runpsc's own options, as annotations (docs/oci.md): name -> allowed values (None: any).
ANNOTATIONS: dict[str, tuple[str, ...] | None] = {
    "runpsc.network": ("none", "host", "sandbox"),
    "runpsc.strace": ("true", "false"),
    "runpsc.memory": None,
}


class SpecError(ValueError):
    """config.json is wrong; the message names the field."""


@dataclass(frozen=True, slots=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """process.capabilities as bit masks. Absent sets are empty, as runc takes them (a
    config.json without `capabilities` gives no capability at all, even to uid 0); names
    Linux does not know are left out and listed in `unknown` (runc ignores them too)."""

    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0
    unknown: tuple[str, ...] = ()

    def after_exec(self, uid: int) -> tuple[int, int, int, int, int]:
        """(effective, permitted, inheritable, bounding, ambient) of the program once runc has set
        these sets and exec'd it (Linux's cap_bprm_creds_from_file for a file without
        file capabilities): uid 0's permitted set is bounding | inheritable | ambient and
        its effective set the same; any other uid keeps only the ambient set. The ambient
        set itself holds only what is both permitted and inheritable."""
        ambient = self.ambient & self.permitted & self.inheritable
        permitted = (self.bounding | self.inheritable | ambient) if uid == 0 else ambient
        return permitted, permitted, self.inheritable, self.bounding, ambient


@dataclass(frozen=True, slots=True)
class Process:
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)  # resource -> (soft, hard)
    no_new_privileges: bool = False
    capabilities: Capabilities = field(default_factory=Capabilities)

    def env_dict(self) -> dict[str, str]:
        """The environment as a mapping; of a repeated name the first wins, as glibc's
        getenv finds it."""
        out: dict[str, str] = {}
        for kv in self.env:
            k, _, v = kv.partition("=")
            out.setdefault(k, v)
        return out


@dataclass(frozen=True, slots=True)
class Mount:
    destination: str
    type: str
    source: str = ""
    options: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        return "ro" in self.options and "rw" not in self.options[self.options.index("ro"):]

    def option_value(self, name: str) -> str | None:
        """The value of a ``name=value`` option (the last one given)."""
        found = None
        for o in self.options:
            k, sep, v = o.partition("=")
            if sep and k == name:
                found = v
        return found


@dataclass(frozen=True, slots=True)
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int | None = None


@dataclass(slots=True)
class Spec:
    """What runpsc uses of config.json; `raw` is the whole document (for hooks' state)."""

    bundle: str
    root: str  # absolute
    root_readonly: bool
    process: Process
    mounts: list[Mount]
    hostname: str | None
    domainname: str | None
    annotations: dict[str, str]
    hooks: dict[str, list[Hook]]
    raw: dict[str, Any]
    pids_limit: int | None = None  # linux.resources.pids.limit (None: no limit)
    #: the runpsc.memory annotation, else linux.resources.memory.limit (None: the host's)
    memory_limit: int | None = None
    readonly_paths: tuple[str, ...] = ()  # linux.readonlyPaths
    masked_paths: tuple[str, ...] = ()  # linux.maskedPaths
    #: linux.namespaces' network path: that namespace is the sandbox's network
    network_path: str | None = None
    cgroups_path: str = ""  # linux.cgroupsPath ("": runc's default, the container's ID)

    @property
    def network(self) -> str:
        return self.annotations.get("runpsc.network", "none")

    @property
    def strace(self) -> bool:
        return self.annotations.get("runpsc.strace") == "true"


def load_bundle(bundle: str) -> Spec:
    """Read BUNDLE/config.json and check it.

    Raises:
        SpecError: a missing bundle or config.json, bad JSON, or a wrong field.
    """
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):  # runc's words: it chdirs into the bundle first
        raise SpecError(f"chdir {bundle}: no such file or directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SpecError("JSON specification file config.json not found") from None
    except (OSError, ValueError) as e:
        raise SpecError(f"config.json: {e}") from None
    return parse_spec(doc, bundle)


def parse_spec(doc: Any, bundle: str) -> Spec:
    """Check the document `doc` of a bundle at `bundle` (absolute)."""
    top = _obj(doc, "config.json")
    _str(top.get("ociVersion"), "ociVersion")
    root = _obj(top.get("root"), "root")
    root_path = _str(root.get("path"), "root.path")
    if not root_path:
        raise SpecError("root.path: must not be empty")
    root_abs = os.path.normpath(os.path.join(bundle, root_path))
    if not os.path.isdir(root_abs):
        raise SpecError(f"root.path: {root_abs} is not a directory")
    mounts = [_mount(m, f"mounts[{i}]") for i, m in
              enumerate(_list(top.get("mounts", []), "mounts"))]
    annotations = _str_map(top.get("annotations", {}), "annotations")
    for k, v in annotations.items():
        if k.startswith("runpsc."):
            if k not in ANNOTATIONS:
                raise SpecError(f"annotations.{k}: unknown runpsc annotation (known: "
                                f"{', '.join(ANNOTATIONS)})")
            allowed = ANNOTATIONS[k]
            if allowed is not None and v not in allowed:
                raise SpecError(f"annotations.{k}: {v!r} is not one of {', '.join(allowed)}")
    hooks_doc = _obj(top.get("hooks", {}), "hooks")
    hooks: dict[str, list[Hook]] = {}
    for name, items in hooks_doc.items():
        if name not in HOOK_NAMES:
            raise SpecError(f"hooks.{name}: unknown hook (known: {', '.join(HOOK_NAMES)})")
        hooks[name] = [_hook(h, f"hooks.{name}[{i}]")
                       for i, h in enumerate(_list(items, f"hooks.{name}"))]
    linux = _obj(top.get("linux", {}), "linux")
    network_path = None
    for i, ns in enumerate(_list(linux.get("namespaces", []), "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        ns = _obj(ns, where)
        kind = _str(ns.get("type"), f"{where}.type")
        path = _str(ns.get("path", ""), f"{where}.path")
        if path and kind == "network":
            # The sandbox's network: the Sentry's sockets are made in that namespace.
            if not path.startswith("/"):
                raise SpecError(f"{where}.path: {path!r} is not an absolute path")
            if annotations.get("runpsc.network", "none") != "none":
                raise SpecError(f"{where}.path: a network namespace path and the "
                                "runpsc.network annotation exclude each other")
            from sentry.kernel.network import Network, NetworkError

            try:
                Network.at(path).close()
            except NetworkError as e:
                raise SpecError(f"{where}.path: {e}") from None
            network_path = path
        elif path and kind in ("pid", "mount", "user", "ipc", "uts", "cgroup"):
            raise SpecError(f"{where}.path: joining an existing {kind} namespace is not "
                            "supported (each runpsc container is its own sandbox)")
    hostname = top.get("hostname")
    domainname = top.get("domainname")
    if "seccomp" in linux:  # accepted, not applied: docs/oci.md says why
        _obj(linux["seccomp"], "linux.seccomp")
    resources = _obj(linux.get("resources", {}), "linux.resources")
    pids = _obj(resources.get("pids", {}), "linux.resources.pids")
    memory = _obj(resources.get("memory", {}), "linux.resources.memory")
    return Spec(
        pids_limit=resource_limit(pids.get("limit"), "linux.resources.pids.limit"),
        memory_limit=_memory_limit(annotations.get("runpsc.memory"), memory.get("limit")),
        bundle=bundle, root=root_abs,
        root_readonly=_bool(root.get("readonly", False), "root.readonly"),
        process=_process(top.get("process"), "process"),
        mounts=mounts,
        hostname=None if hostname is None else _str(hostname, "hostname"),
        domainname=None if domainname is None else _str(domainname, "domainname"),
        annotations=annotations, hooks=hooks, raw=top,
        readonly_paths=_paths(linux.get("readonlyPaths", []), "linux.readonlyPaths"),
        masked_paths=_paths(linux.get("maskedPaths", []), "linux.maskedPaths"),
        network_path=network_path,
        cgroups_path=_str(linux.get("cgroupsPath", ""), "linux.cgroupsPath"),
    )


def _paths(v: Any, where: str) -> tuple[str, ...]:
    out = []
    for i, p in enumerate(_list(v, where)):
        p = _str(p, f"{where}[{i}]")
        if not p.startswith("/"):
            raise SpecError(f"{where}[{i}]: {p!r} is not an absolute path")
        out.append(os.path.normpath(p))
    return tuple(out)


def _capabilities(v: Any, where: str) -> Capabilities:
    doc = _obj(v, where)
    masks: dict[str, int] = {}
    unknown: list[str] = []
    for name in CAP_SETS:
        mask = 0
        for i, cap in enumerate(_list(doc.get(name, []), f"{where}.{name}")):
            cap = _str(cap, f"{where}.{name}[{i}]")
            if cap in CAPABILITIES:
                mask |= 1 << CAPABILITIES.index(cap)
            elif cap not in unknown:
                unknown.append(cap)
        masks[name] = mask
    return Capabilities(**masks, unknown=tuple(unknown))


def resource_limit(v: Any, where: str) -> int | None:
    """A pids or memory limit as runc takes it: a positive number; 0, -1 or none: no
    limit."""
    if v is None:
        return None
    n = _int(v, where)
    return n if n > 0 else None


def _memory_limit(annotation: str | None, limit: Any) -> int | None:
    """The container's memory limit: the `runpsc.memory` annotation (a size such as 512M),
    else linux.resources.memory.limit (a positive byte count; 0, -1 or none: no limit, as
    runc takes it)."""
    if annotation is not None:
        from runtime.sandbox import parse_size

        try:
            return parse_size(annotation)
        except ValueError as e:
            raise SpecError(f"annotations.runpsc.memory: {e}") from None
    return memory_limit(limit, "linux.resources.memory.limit")


def memory_limit(v: Any, where: str) -> int | None:
    """A memory limit as the memory cgroup keeps it: rounded down to a page."""
    n = resource_limit(v, where)
    return None if n is None else max(n - n % os.sysconf("SC_PAGE_SIZE"),
                                      os.sysconf("SC_PAGE_SIZE"))


def _process(doc: Any, where: str) -> Process:
    p = _obj(doc, where)
    args = [_str(a, f"{where}.args[{i}]") for i, a in
            enumerate(_list(p.get("args"), f"{where}.args"))]
    if not args:
        raise SpecError(f"{where}.args: must not be empty")
    env = [_str(e, f"{where}.env[{i}]") for i, e in enumerate(_list(p.get("env", []),
                                                                      f"{where}.env"))]
    for i, e in enumerate(env):
        if "=" not in e:
            raise SpecError(f"{where}.env[{i}]: {e!r} is not NAME=VALUE")
    cwd = _str(p.get("cwd"), f"{where}.cwd")
    if not cwd.startswith("/"):
        raise SpecError(f"{where}.cwd: {cwd!r} is not an absolute path")
    u = _obj(p.get("user", {}), f"{where}.user")
    umask = u.get("umask")
    user = User(uid=_int(u.get("uid", 0), f"{where}.user.uid"),
                gid=_int(u.get("gid", 0), f"{where}.user.gid"),
                umask=None if umask is None else _int(umask, f"{where}.user.umask"),
                additional_gids=tuple(_int(g, f"{where}.user.additionalGids[{i}]") for i, g in
                                      enumerate(_list(u.get("additionalGids", []),
                                                      f"{where}.user.additionalGids"))))
    size = p.get("consoleSize")
    console = None
    if size is not None:
        s = _obj(size, f"{where}.consoleSize")
        console = (_int(s.get("height", 0), f"{where}.consoleSize.height"),
                   _int(s.get("width", 0), f"{where}.consoleSize.width"))
    rlimits: dict[int, tuple[int, int]] = {}
    for i, r in enumerate(_list(p.get("rlimits", []), f"{where}.rlimits")):
        w = f"{where}.rlimits[{i}]"
        r = _obj(r, w)
        kind = _str(r.get("type"), f"{w}.type")
        if kind not in RLIMITS:
            raise SpecError(f"{w}.type: unknown resource {kind!r}")
        soft, hard = _int(r.get("soft"), f"{w}.soft"), _int(r.get("hard"), f"{w}.hard")
        if soft > hard:
            raise SpecError(f"{w}: soft limit {soft} is above the hard limit {hard}")
        rlimits[RLIMITS[kind]] = (soft, hard)
    caps = _capabilities(p.get("capabilities", {}), f"{where}.capabilities")
    if "oomScoreAdj" in p:
        _int(p["oomScoreAdj"], f"{where}.oomScoreAdj")
    return Process(args=args, env=env, cwd=cwd, user=user,
                   terminal=_bool(p.get("terminal", False), f"{where}.terminal"),
                   console_size=console, rlimits=rlimits,
                   no_new_privileges=_bool(p.get("noNewPrivileges", False),
                                           f"{where}.noNewPrivileges"),
                   capabilities=caps)


def parse_process(doc: Any) -> Process:
    """An exec's process.json (the same schema as config.json's process)."""
    return _process(doc, "process")


def _mount(doc: Any, where: str) -> Mount:
    m = _obj(doc, where)
    dest = _str(m.get("destination"), f"{where}.destination")
    if not dest.startswith("/"):
        raise SpecError(f"{where}.destination: {dest!r} is not an absolute path")
    options = tuple(_str(o, f"{where}.options[{i}]") for i, o in
                    enumerate(_list(m.get("options", []), f"{where}.options")))
    kind = _str(m.get("type", "bind" if {"bind", "rbind"} & set(options) else ""),
                f"{where}.type")
    if kind == "none" and {"bind", "rbind"} & set(options):
        kind = "bind"
    if kind not in MOUNT_TYPES:
        raise SpecError(f"{where}.type: {kind!r} is not supported (supported: "
                        f"{', '.join(MOUNT_TYPES)})")
    source = _str(m.get("source", ""), f"{where}.source")
    if kind == "bind":
        if not source.startswith("/"):
            raise SpecError(f"{where}.source: {source!r} is not an absolute path")
        if not os.path.exists(source):
            raise SpecError(f"{where}.source: {source} does not exist")
    return Mount(os.path.normpath(dest), kind, source, options)


def _hook(doc: Any, where: str) -> Hook:
    h = _obj(doc, where)
    path = _str(h.get("path"), f"{where}.path")
    if not path.startswith("/"):
        raise SpecError(f"{where}.path: {path!r} is not an absolute path")
    timeout = h.get("timeout")
    return Hook(path=path,
                args=[_str(a, f"{where}.args[{i}]") for i, a in
                      enumerate(_list(h.get("args", []), f"{where}.args"))],
                env=[_str(e, f"{where}.env[{i}]") for i, e in
                     enumerate(_list(h.get("env", []), f"{where}.env"))],
                timeout=None if timeout is None else _int(timeout, f"{where}.timeout"))


def _type_error(where: str, want: str, got: Any) -> SpecError:
    if got is None:
        return SpecError(f"{where}: missing (want {want})")
    return SpecError(f"{where}: want {want}, got {type(got).__name__} {json.dumps(got)[:40]}")


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _type_error(where, "an object", v)
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _type_error(where, "an array", v)
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _type_error(where, "a string", v)
    return v


def _int(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise _type_error(where, "an integer", v)
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _type_error(where, "a boolean", v)
    return v


def _str_map(v: Any, where: str) -> dict[str, str]:
    return {k: _str(x, f"{where}.{k}") for k, x in _obj(v, where).items()}


def default_spec(*, terminal: bool = True) -> dict[str, Any]:
    """What `runpsc spec` writes: runc's default config.json (rootfs, `sh`, the usual
    mounts, its capabilities, masked and read-only paths), less what runpsc ignores
    (cgroups paths)."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {name: list(caps) for name in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runpsc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
