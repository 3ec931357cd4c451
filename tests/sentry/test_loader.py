"""The loader: static, static-pie, #! scripts, initial stack and auxv, exec errors."""

import errno
import os

import pytest

from sentry.errors import SyscallError
from sentry.loader import parse_shebang

from .platform_helpers import build_c, busybox, native, run

AUXV = r"""
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env=%s\n", *e);
    printf("pagesz=%lu uid=%lu euid=%lu gid=%lu egid=%lu secure=%lu\n", getauxval(AT_PAGESZ),
           getauxval(AT_UID), getauxval(AT_EUID), getauxval(AT_GID), getauxval(AT_EGID),
           getauxval(AT_SECURE));
    printf("hwcap=%lx hwcap2=%lx clktck=%lu\n", getauxval(AT_HWCAP), getauxval(AT_HWCAP2),
           getauxval(AT_CLKTCK));
    printf("platform=%s execfn=%s\n", (char *)getauxval(AT_PLATFORM),
           (char *)getauxval(AT_EXECFN));
    printf("phdr=%d entry=%d random=%d vdso=%d phent=%lu\n", getauxval(AT_PHDR) != 0,
           getauxval(AT_ENTRY) != 0, getauxval(AT_RANDOM) != 0, getauxval(AT_SYSINFO_EHDR) != 0,
           getauxval(AT_PHENT));
    printf("sp_aligned=%d\n", ((unsigned long)__builtin_frame_address(0) & 7) == 0);
    return argc;
}
"""


@pytest.mark.parametrize("flavour", ["-static", "-static-pie"])
async def test_auxv_and_stack_match_linux(tmp_path, flavour):
    prog = build_c(tmp_path, "auxv", AUXV, flavour)
    argv = [prog, "one", "two words", ""]
    env = ["A=1", "B=two words"]
    p_native = __import__("subprocess").run(argv, capture_output=True, env=dict(
        e.split("=", 1) for e in env))
    uid = os.getuid()
    status, out, _, _ = await run(argv, env=env)
    assert status == 4 << 8
    assert out == p_native.stdout
    assert f"uid={uid}".encode() in out or uid == 0


async def test_static_busybox_matches_native():
    bb = busybox()
    for args in (["echo", "hello", "sandbox"], ["seq", "3"], ["true"], ["false"]):
        st, out = native([bb, *args])
        status, got, _, _ = await run([bb, *args])
        assert (status, got) == (st, out), args


async def test_shebang_script(tmp_path):
    bb = busybox()
    script = tmp_path / "script"
    script.write_text(f"#!{bb}  echo\nignored\n")
    script.chmod(0o755)
    st, out = native([str(script), "a", "b"])
    status, got, _, _ = await run([str(script), "a", "b"])
    assert (status, got) == (st, out)
    assert got == f"{script} a b\n".encode()


def test_parse_shebang():
    assert parse_shebang(b"#!/bin/sh\n") == (b"/bin/sh", None)
    assert parse_shebang(b"#! /usr/bin/env  python3 -S \nx") == (b"/usr/bin/env", b"python3 -S")
    assert parse_shebang(b"#!\t/bin/awk\t-f\n") == (b"/bin/awk", b"-f")
    with pytest.raises(SyscallError) as e:
        parse_shebang(b"#!   \n")
    assert e.value.errno == errno.ENOEXEC


async def test_exec_errors(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF" + b"\0" * 60)
    garbage.chmod(0o755)
    text = tmp_path / "text"
    text.write_bytes(b"just text\n")
    text.chmod(0o755)
    for path, err in ((tmp_path / "missing", errno.ENOENT), (plain, errno.EACCES),
                      (tmp_path, errno.EACCES), (garbage, errno.ENOEXEC),
                      (text, errno.ENOEXEC)):
        with pytest.raises(OSError) as native_err:
            _native_exec_error(str(path))
        assert native_err.value.errno == err, path
        with pytest.raises(SyscallError) as e:
            await run([str(path)])
        assert e.value.errno == err, path


def _native_exec_error(path: str) -> None:
    """Raise what execve says natively (subprocess reports the child's exec errno)."""
    import subprocess

    subprocess.run([path], check=False, capture_output=True)


async def _load_into_fresh_stub(path: str, argv: list[bytes] | None = None):
    from sentry.loader import HostFiles, load
    from sentry.mm import MemoryManager
    from sentry.platform import PtraceStub

    stub = PtraceStub.start()
    mm = MemoryManager(stub)
    try:
        loaded = await load(mm, HostFiles(), path.encode(), argv or [path.encode()], [])
        return loaded, list(mm.vmas)
    finally:
        stub.kill()


async def test_pt_gnu_stack_decides_stack_protection(tmp_path):
    plain = build_c(tmp_path, "plain", "int main(void){return 0;}", "-static")
    execstack = build_c(tmp_path, "xstack", "int main(void){return 0;}", "-static",
                        "-z", "execstack")
    for prog, want_exec in ((plain, False), (execstack, True)):
        _, vmas = await _load_into_fresh_stub(prog)
        stack = [v for v in vmas if v.name == b"[stack]"]
        assert len(stack) == 1 and bool(stack[0].prot & 4) is want_exec, prog


async def test_scripts_nest_five_deep_then_eloop(tmp_path):
    bb = busybox()
    prev = bb
    for i in range(6):
        script = tmp_path / f"s{i}"
        script.write_text(f"#!{prev}{' echo' if i == 0 else ''}\n")
        script.chmod(0o755)
        prev = str(script)
    # natively: five nested interpreters run, six are ELOOP
    assert native([str(tmp_path / "s4")])[0] == 0
    with pytest.raises(OSError) as e:
        _native_exec_error(str(tmp_path / "s5"))
    assert e.value.errno == errno.ELOOP
    loaded, _ = await _load_into_fresh_stub(str(tmp_path / "s4"))
    assert loaded.argv[0] == bb.encode()
    with pytest.raises(SyscallError) as e:
        await _load_into_fresh_stub(str(tmp_path / "s5"))
    assert e.value.errno == errno.ELOOP
