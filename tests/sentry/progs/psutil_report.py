"""What psutil says about the machine and this process, as JSON (run inside `runpsc do` by
tests/sentry/test_procfs_psutil.py with psutil on PYTHONPATH)."""

import json
import os
import resource
import sys
import time

import psutil

me = psutil.Process()
spinner = os.fork()
if spinner == 0:  # a child whose CPU time becomes ours once waited for
    start = time.process_time()
    while time.process_time() - start < 0.3:  # read once per 20,000 steps (a served call)
        for _ in range(20000):
            pass
    os._exit(0)
os.waitpid(spinner, 0)
held = open("/etc/hostname")  # noqa: SIM115 - kept open for open_files
child = psutil.Popen(["sleep", "30"])
report = {
    "cpu_count": psutil.cpu_count(),
    "cpu_times": psutil.cpu_times()._asdict(),
    "virtual_memory": psutil.virtual_memory()._asdict(),
    "swap_memory": psutil.swap_memory()._asdict(),
    "boot_time": psutil.boot_time(),
    "disk_partitions": [p.mountpoint for p in psutil.disk_partitions(all=True)],
    "memory_info": me.memory_info()._asdict(),
    "cpu_times_children": me.cpu_times().children_user + me.cpu_times().children_system,
    "io_counters": me.io_counters()._asdict(),
    "memory_maps": [m.path for m in me.memory_maps()],
    "open_files": [(f.path, f.fd) for f in me.open_files()],
    "held_fd": held.fileno(),
    "num_fds": me.num_fds(),
    "threads": len(me.threads()),
    "children": [c.pid for c in me.children()],
    "child": child.pid,
    "cwd": me.cwd(),
    "exe": me.exe(),
    "executable": sys.executable,
    "cmdline": me.cmdline(),
    "environ": me.environ().get("PROCFS_TEST"),
    "status": me.status(),
    "create_time": me.create_time(),
    "nice": me.nice(),
    "rlimit": list(me.rlimit(psutil.RLIMIT_NOFILE)),
    "getrlimit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    "pids": psutil.pids(),
}
child.kill()
child.wait()
print(json.dumps(report))
