"""One call that runs the oracle and targets and builds the matrix (used by the CLI and CI)."""

from __future__ import annotations

from collections.abc import Iterable

from .report import Matrix
from .runner import TargetRun, run_target, select
from .targets import open_oracle, open_target


async def run_matrix(specs: Iterable[str], *, patterns: Iterable[str] | None = None,
                     oracle_base: str | None = None) -> Matrix:
    """Run the selected cases on the oracle and on every target in `specs`, in turn.

    Raises:
        TargetSpecError: a target specification is malformed or cannot be opened.
        ValueError: no case matches `patterns`.
    """
    cases = select(patterns)
    if not cases:
        raise ValueError(f"no case matches {list(patterns or [])!r}")
    async with open_oracle(oracle_base) as o:
        oracle = await run_target(o.target, o.label, cases, kind=o.kind)
    runs: list[TargetRun] = []
    for spec in specs:
        async with open_target(spec) as ot:
            runs.append(await run_target(ot.target, ot.label, cases, kind=ot.kind))
    return Matrix.build(cases, oracle, runs)
