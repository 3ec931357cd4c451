"""New processes: fork, vfork, posix_spawn (clone3/clone with CLONE_VM|CLONE_VFORK), execve,
wait4/waitid, exit statuses and default-action kills, compared with Linux."""

from .platform_helpers import build_c, busybox, native, run, run_vfs

PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "child")) {
        printf("exec'd child argc=%d arg=%s env=%s\n", argc, argv[2], getenv("X"));
        return 7;
    }
    int *shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int private_var = 1;
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        private_var = 2;
        *shared = 42;
        printf("child ppid_ok=%d self_ok=%d\n", getppid() == me, getpid() != me);
        _exit(3);
    }
    int st = 0;
    pid_t w = waitpid(c, &st, 0);
    printf("waited %d exited=%d code=%d private=%d shared=%d\n", w == c, WIFEXITED(st),
           WEXITSTATUS(st), private_var, *shared);
    printf("echild %d %d\n", (int)waitpid(-1, &st, WNOHANG), errno);
    c = fork();
    if (c == 0) { volatile int *p = 0; *p = 1; _exit(0); }
    waitpid(c, &st, 0);
    printf("segv signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    c = fork();
    if (c == 0) { *shared = 7; pause(); _exit(0); }
    while (*shared != 7) usleep(1000);  /* the child is in pause() (or about to be) */
    kill(c, SIGTERM);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, c, &si, WEXITED);
    printf("killed code=%d status=%d pid_ok=%d\n", si.si_code, si.si_status, si.si_pid == c);
    c = vfork();
    if (c == 0) {
        char *args[] = {argv[0], "child", "viavfork", NULL};
        char *env[] = {"X=vfork", NULL};
        execve(argv[0], args, env);
        _exit(99);
    }
    waitpid(c, &st, 0);
    printf("vfork exec code=%d\n", WEXITSTATUS(st));
    char *args[] = {argv[0], "child", "viaspawn", NULL};
    char *env[] = {"X=spawn", NULL};
    pid_t sp;
    int r = posix_spawn(&sp, argv[0], NULL, NULL, args, env);
    waitpid(sp, &st, 0);
    printf("spawn r=%d code=%d\n", r, WEXITSTATUS(st));
    c = fork();
    if (c == 0) {
        char *bad[] = {"/nonexistent", NULL};
        execve("/nonexistent", bad, environ);
        printf("execve failed errno=%d\n", errno);
        _exit(5);
    }
    waitpid(c, &st, 0);
    printf("bad exec code=%d\n", WEXITSTATUS(st));
    return 0;
}
"""


async def test_fork_exec_wait_match_linux(tmp_path):
    prog = build_c(tmp_path, "fork", PROGRAM, "-static")
    st, out = native([prog])
    status, got, _, k = await run([prog])
    assert (status, got) == (st, out), k.events
    assert b"waited 1 exited=1 code=3 private=1 shared=42" in got
    assert k.procs_ended == {}  # nothing kept of ended processes (run() took pid 1's)


async def test_fork_through_the_vfs_with_dynamic_programs(tmp_path):
    """A shell pipeline-free fork+exec: busybox sh runs an external dynamic program."""
    from .test_loader_dynamic import _closure

    files = _closure("/bin/ls")
    files["/bin/busybox"] = busybox()
    files["/d/x"] = b"x"
    status, out, k, _ = await run_vfs(["/bin/busybox", "sh", "-c", "/bin/ls /d; echo $?"],
                                      files)
    assert status == 0, k.events
    assert out == b"x\n0\n"


async def test_pipelines_and_tar_gzip_round_trip():
    """busybox sh pipelines (fork, pipe, exec, wait) and GNU tar czf/xzf (tar runs
    `/bin/sh -c gzip` through fork and vfork) on a tmpfs root."""
    from .test_loader_dynamic import _closure

    files: dict[str, bytes | str] = {"/bin/busybox": busybox(), "/bin/sh": busybox()}
    for prog in ("/bin/tar", "/bin/gzip", "/bin/sort"):
        files.update(_closure(prog))
    files["/d/a"] = b"hello\n" * 1000
    files["/d/sub/b"] = b"world\n"
    script = (
        "echo a b c | busybox tr a-z A-Z | busybox wc -c; "
        "for i in 1 3 2; do echo $i; done | sort -r; "
        "cd /d && tar czf /t.tgz . && mkdir /x && cd /x && tar xzf /t.tgz && "
        "busybox md5sum a sub/b && cd /d && busybox md5sum a sub/b; exit 4"
    )
    status, out, k, _ = await run_vfs(["/bin/sh", "-c", script], files, env=["PATH=/bin"])
    lines = out.decode().splitlines()
    assert status == 4 << 8, (out, k.events)
    assert lines[:4] == ["6", "3", "2", "1"]
    assert lines[4:6] == lines[6:8] and len(lines) == 8


async def test_writer_to_a_closed_pipe_dies_of_sigpipe(tmp_path):
    """`yes | head -1`: yes is killed by SIGPIPE (default action), as natively."""
    src = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        for (;;) write(p[1], "y\n", 2);
    }
    close(p[1]);
    char b[2];
    read(p[0], b, 2);
    close(p[0]);
    int st;
    waitpid(c, &st, 0);
    printf("signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
}
"""
    prog = build_c(tmp_path, "sigpipe", src, "-static")
    st, out = native([prog])
    status, got, k, _ = await run_vfs(["/p"], {"/p": prog})
    assert (status, got) == (st, out) == (0, b"signaled=1 sig=13\n"), k.events
