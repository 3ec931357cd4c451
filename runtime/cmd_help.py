"""`runpsc help TOPIC`: reference pages generated from the code itself.

`runpsc help syscalls` prints the Sentry's syscall table (number, name, support level, note),
the same data docs/syscalls.md is generated from, so the answer is always current.
"""

from __future__ import annotations

import click

LEVELS = ("supported", "partial", "errno", "unimplemented")


@click.group("help")
def help_group() -> None:
    """Reference pages (try: runpsc help syscalls)."""


@help_group.command("syscalls")
@click.option(
    "--level",
    "levels",
    multiple=True,
    type=click.Choice(LEVELS),
    help="Only entries at this support level (repeatable).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list the unimplemented calls.")
def help_syscalls(levels: tuple[str, ...], show_all: bool) -> None:
    """The syscall table: what the Sentry serves, how completely, and notes."""
    import sentry.syscalls  # noqa: F401  (registers every family)
    from sentry.kernel.table import TABLE, name_of

    wanted = set(levels) or (set(LEVELS) if show_all else set(LEVELS) - {"unimplemented"})
    rows = []
    for nr in range(512):
        entry = TABLE.get(nr)
        if entry is not None:
            level, name, note = entry.level.value, entry.name, entry.note
        else:
            name = name_of(nr)
            if name.startswith("syscall_"):
                continue
            level, note = "unimplemented", "ENOSYS"
        if level in wanted:
            rows.append((nr, name, level, note))
    width = max((len(r[1]) for r in rows), default=4)
    click.echo(f"{'NR':>3}  {'NAME':<{width}}  {'LEVEL':<13}  NOTE")
    for nr, name, level, note in rows:
        click.echo(f"{nr:>3}  {name:<{width}}  {level:<13}  {note}".rstrip())
    counts = {lv: 0 for lv in LEVELS}
    for nr in range(512):
        entry = TABLE.get(nr)
        if entry is not None:
            counts[entry.level.value] += 1
        elif not name_of(nr).startswith("syscall_"):
            counts["unimplemented"] += 1
    click.echo("\n" + ", ".join(f"{counts[lv]} {lv}" for lv in LEVELS))
