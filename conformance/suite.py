"""One call that runs the oracle and targets and builds the matrix (used by the CLI and CI)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio

from .case import Case
from .report import Matrix
from .runner import TargetRun, run_target, select
from .target_specs import check_spec, open_oracle, open_target

if TYPE_CHECKING:
    import p9


async def run_oracle(cases: list[Case], *, base: str | None = None) -> TargetRun:
    """Run `cases` on the host kernel in a fresh directory under `base`."""
    async with open_oracle(base) as o:
        return await run_target(o.target, o.label, cases, kind=o.kind)


async def run_spec(spec: str, cases: list[Case], *,
                   tls: p9.TLSClientConfig | None = None) -> TargetRun:
    """Open target `spec` (`tls` for its tls: address, if any), run `cases` on it, close it."""
    async with open_target(spec, tls=tls) as ot:
        return await run_target(ot.target, ot.label, cases, kind=ot.kind)


async def run_matrix(specs: Iterable[str], *, patterns: Iterable[str] | None = None,
                     oracle_base: str | None = None, oracle: TargetRun | None = None,
                     parallel: bool = False, tls: p9.TLSClientConfig | None = None) -> Matrix:
    """Run the selected cases on the oracle (unless given) and on every target in `specs`.

    Targets run one after the other, or all at once with `parallel` (useful when each is
    served by its own process). `tls` serves targets whose address is tls:HOST:PORT.

    Raises:
        TargetSpecError: a target specification is malformed or cannot be opened.
        ValueError: no case matches `patterns`.
    """
    cases = select(patterns)
    if not cases:
        raise ValueError(f"no case matches {list(patterns or [])!r}")
    specs = list(specs)
    for spec in specs:
        check_spec(spec)
    if oracle is None:
        oracle = await run_oracle(cases, base=oracle_base)
    runs: list[TargetRun | None] = [None] * len(specs)
    if parallel:
        async def one(i: int) -> None:
            runs[i] = await run_spec(specs[i], cases, tls=tls)

        async with trio.open_nursery() as nursery:
            for i in range(len(specs)):
                nursery.start_soon(one, i)
    else:
        for i, spec in enumerate(specs):
            runs[i] = await run_spec(spec, cases, tls=tls)
    return Matrix.build(cases, oracle, [r for r in runs if r is not None])
