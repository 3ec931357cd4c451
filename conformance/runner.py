"""Run cases on targets, record what happened, compare each target with the oracle.

Each case gets a fresh directory `cNNNN` (mode 0755, owned by root) inside a run directory
on the target, the target's umask reset to 022, and a time limit. Afterwards the run
directory is removed through the target itself.
"""

from __future__ import annotations

import errno
import fnmatch
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio

from .case import REGISTRY, Case, CaseFailed, Ctx, errname
from .target_api import Target

#: A guard against a target that never answers, not a speed check: on a busy machine (2 CPUs,
#: load average 16-25) a 1000-entry listing through a FUSE mount of a gofer took over 60 s.
CASE_TIMEOUT = 240.0


@dataclass
class CaseResult:
    """What one case did on one target."""

    status: str  # ok | failed | error | timeout | n/a
    trace: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class TargetRun:
    """All results of one target, with how long the run took."""

    label: str
    results: dict[str, CaseResult]
    seconds: float
    kind: str = "dir"
    cleanup_error: str = ""


def select(patterns: Iterable[str] | None = None) -> list[Case]:
    """The registered cases whose id matches any glob (or substring) in `patterns`."""
    from . import cases  # noqa: F401  (registers the case library)

    pats = list(patterns or [])
    out = []
    for c in REGISTRY.values():
        if not pats or any(fnmatch.fnmatchcase(c.id, p) or p in c.id for p in pats):
            out.append(c)
    return out


async def run_case(root: Target, c: Case, name: bytes) -> CaseResult:
    """Run case `c` in a fresh directory `name` under `root`."""
    missing = c.needs - root.features
    if missing:
        return CaseResult("n/a", detail="target lacks " + ", ".join(sorted(missing)))
    try:
        await root.mkdir(name, 0o755)
        await root.chmod(name, 0o755)
        t = root.derive(root=name)
    except OSError as e:
        return CaseResult("error", detail=f"cannot create the case directory: {e}")
    t.umask(0o022)
    trace: list[str] = []
    ctx = Ctx(t, trace)
    res = CaseResult("ok", trace)
    try:
        with trio.fail_after(CASE_TIMEOUT):
            await c.fn(ctx)
    except CaseFailed as e:
        res.status, res.detail = "failed", str(e)
    except OSError as e:
        res.status = "error"
        res.detail = f"unexpected {errname(e.errno or 0)}: {trace[-1] if trace else e}"
    except trio.TooSlowError:
        res.status, res.detail = "timeout", f"no answer within {CASE_TIMEOUT:.0f}s"
    except Exception as e:  # a broken target must not stop the run
        res.status, res.detail = "error", f"{type(e).__name__}: {e}"
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await ctx.aclose()
                await t.aclose()
            except Exception as e:  # noqa: BLE001
                res.detail = res.detail or f"closing handles failed: {e!r}"
    return res


async def run_target(root: Target, label: str, cases: list[Case], *,
                     kind: str = "dir", concurrency: int = 8) -> TargetRun:
    """Run every case on `root`, each in its own directory of a fresh run directory.

    Up to `concurrency` cases run at once (each in its own directory, with its own umask),
    which hides the round-trip latency of remote targets.
    """
    started = time.monotonic()
    run = f"runpsc-conformance-{secrets.token_hex(4)}".encode()
    await root.mkdir(run, 0o755)
    await root.chmod(run, 0o755)
    top = root.derive(root=run)
    results: dict[str, CaseResult] = {}
    limit = trio.Semaphore(max(1, concurrency))

    async def one(i: int, c: Case) -> None:
        async with limit:
            results[c.id] = await run_case(top, c, b"c%04d" % i)

    async with trio.open_nursery() as nursery:
        for i, c in enumerate(cases):
            nursery.start_soon(one, i, c)
    results = {c.id: results[c.id] for c in cases}
    await top.aclose()
    cleanup = ""
    with trio.move_on_after(300) as scope:
        try:
            await remove_tree(root, run, limit=trio.CapacityLimiter(max(1, concurrency)))
        except Exception as e:  # a broken target must not lose the results
            cleanup = f"could not remove {run!r}: {e!r}"
    if scope.cancelled_caught:
        cleanup = f"removing {run!r} timed out"
    return TargetRun(label, results, time.monotonic() - started, kind, cleanup)


async def remove_tree(t: Target, path: bytes, *, limit: trio.CapacityLimiter | None = None,
                      depth: int = 0) -> None:
    """Remove `path` and everything below it through target `t` (as root); the first
    level (the case directories of a run) in parallel, up to `limit` at once."""
    try:
        await t.unlink(path)  # most entries are not directories: one request, no stat
        return
    except OSError as e:
        # A directory: EISDIR (Linux), EPERM (POSIX), ENOTEMPTY (servers that ignore the
        # missing AT_REMOVEDIR, like nfs-ganesha).
        if e.errno not in (errno.EISDIR, errno.EPERM, errno.ENOTEMPTY):
            raise
    st = await t.stat(path, False)
    if st.kind != "dir":
        raise OSError(errno.EPERM, f"cannot remove {path!r}")
    if st.perm & 0o700 != 0o700:
        await t.chmod(path, 0o700)
    sub = t.derive(root=path)  # relative descent: trees may be deeper than PATH_MAX
    try:
        names = await sub.listdir(b".")
        if limit is None or depth > 0:
            for name in names:
                await remove_tree(sub, name, depth=depth + 1)
        else:
            errors: list[OSError] = []

            async def one(name: bytes) -> None:
                async with limit:
                    try:
                        await remove_tree(sub, name, limit=limit, depth=depth + 1)
                    except OSError as e:  # keep removing the others; report one
                        errors.append(e)
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(one, name)
            if errors:
                raise errors[0]
    finally:
        await sub.aclose()
    try:
        await t.rmdir(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


@dataclass
class Verdict:
    """How one target's result compares with the oracle's for one case."""

    mark: str  # pass | FAIL | n/a | xfail | bad-case
    detail: str = ""


def compare(oracle: CaseResult, other: CaseResult) -> Verdict:
    """Compare a target's result with the oracle's; detail is the first difference."""
    if oracle.status != "ok":
        return Verdict("bad-case", f"fails natively ({oracle.status}): {oracle.detail}")
    if other.status == "n/a":
        return Verdict("n/a", other.detail)
    for i, (want, got) in enumerate(zip(oracle.trace, other.trace, strict=False)):
        if want != got:
            return Verdict("FAIL", f"step {i + 1}: expected `{want}`, got `{got}`")
    if len(other.trace) < len(oracle.trace):
        nxt = oracle.trace[len(other.trace)]
        why = other.detail or other.status
        return Verdict("FAIL", f"step {len(other.trace) + 1}: expected `{nxt}`, but {why}")
    if len(other.trace) > len(oracle.trace):
        return Verdict("FAIL", f"step {len(oracle.trace) + 1}: extra `{other.trace[len(oracle.trace)]}`")
    if other.status != "ok":
        return Verdict("FAIL", f"{other.status}: {other.detail}")
    return Verdict("pass")
