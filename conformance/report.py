"""The matrix: one row per case, one column per target, the first difference under each
failing row, and one summary line per target; plus the same facts as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .case import Case
from .known_differences import known_bug, known_exception
from .runner import TargetRun, Verdict, compare


@dataclass
class Matrix:
    """Verdicts of every target against the oracle, case by case."""

    cases: list[Case]
    oracle: TargetRun
    targets: list[TargetRun]
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)

    @classmethod
    def build(cls, cases: list[Case], oracle: TargetRun, targets: list[TargetRun]) -> Matrix:
        m = cls(cases, oracle, targets)
        for c in cases:
            row = []
            o = oracle.results[c.id]
            for tr in targets:
                v = compare(o, tr.results[c.id])
                if v.mark == "FAIL":
                    reason = known_exception(tr.kind, c.id)
                    bug = known_bug(tr.kind, c.id)
                    if reason:
                        v = Verdict("xfail", f"{v.detail} [cannot express: {reason}]")
                    elif bug:
                        v = Verdict("bug", f"{v.detail} [known bug: {bug}]")
                row.append(v)
            m.verdicts[c.id] = row
        return m

    def bad_cases(self) -> list[str]:
        """Cases that do not pass on the oracle (wrong cases)."""
        return [c.id for c in self.cases if self.oracle.results[c.id].status != "ok"]

    def counts(self, i: int) -> Counter[str]:
        return Counter(self.verdicts[c.id][i].mark for c in self.cases)

    def failed(self) -> bool:
        """True when the oracle rejects a case or a target differs (known bugs included;
        only what a target cannot express is excused)."""
        return bool(self.bad_cases()) or any(
            self.counts(i)["FAIL"] + self.counts(i)["bug"] for i in range(len(self.targets)))

    def unexpected(self, i: int) -> list[str]:
        """Cases where target `i` differs and neither an exception nor a known bug says why."""
        return [c.id for c in self.cases if self.verdicts[c.id][i].mark == "FAIL"]

    def summary_lines(self) -> list[str]:
        n = len(self.cases)
        ok = n - len(self.bad_cases())
        lines = [f"oracle {self.oracle.label}: {ok}/{n} cases pass natively "
                 f"({self.oracle.seconds:.1f}s)"]
        for i, tr in enumerate(self.targets):
            k = self.counts(i)
            lines.append(
                f"[{i + 1}] {tr.label}: {k['pass']}/{n} match the oracle, {k['FAIL']} differ, "
                f"{k['bug']} known bugs, {k['xfail']} documented exceptions, {k['n/a']} n/a "
                f"({tr.seconds:.1f}s)"
                + (f"; cleanup: {tr.cleanup_error}" if tr.cleanup_error else ""))
        return lines

    def text(self, *, only_differences: bool = False) -> str:
        """The matrix as text."""
        width = max([len(c.id) for c in self.cases] + [10]) + 2
        out = ["targets:", f"  [0] oracle {self.oracle.label}"]
        out += [f"  [{i + 1}] {tr.label}" for i, tr in enumerate(self.targets)]
        head = "case".ljust(width) + "[0]".ljust(6) + "".join(
            f"[{i + 1}]".ljust(6) for i in range(len(self.targets)))
        out += ["", head, "-" * len(head)]
        for c in self.cases:
            o = self.oracle.results[c.id]
            row = self.verdicts[c.id]
            differs = o.status != "ok" or any(v.mark in ("FAIL", "xfail", "bug") for v in row)
            if only_differences and not differs:
                continue
            cells = ("ok" if o.status == "ok" else "BAD").ljust(6)
            cells += "".join(("ok" if v.mark == "pass" else v.mark).ljust(6) for v in row)
            out.append(c.id.ljust(width) + cells)
            if o.status != "ok":
                out.append(f"    [0] case fails natively: {o.status}: {o.detail}")
            for i, v in enumerate(row):
                if v.mark in ("FAIL", "xfail", "bug", "bad-case"):
                    out.append(f"    [{i + 1}] {v.detail}")
        out += ["", *self.summary_lines()]
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        """Everything, including every trace, for later comparison."""
        return {
            "oracle": self.oracle.label,
            "targets": [tr.label for tr in self.targets],
            "summary": self.summary_lines(),
            "cases": [
                {
                    "id": c.id,
                    "doc": c.doc,
                    "oracle": {"status": self.oracle.results[c.id].status,
                               "detail": self.oracle.results[c.id].detail,
                               "trace": self.oracle.results[c.id].trace},
                    "targets": {
                        tr.label: {"verdict": v.mark, "detail": v.detail,
                                   "status": tr.results[c.id].status,
                                   "trace": tr.results[c.id].trace}
                        for tr, v in zip(self.targets, self.verdicts[c.id], strict=True)
                    },
                }
                for c in self.cases
            ],
        }

    def dump_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1, ensure_ascii=True)
            f.write("\n")
