"""What the agent-framework benchmarks share: timed steps, the side-by-side plan, the table.

``bench/test_bench_framework_pydantic_ai.py`` and ``…_smolagents.py`` measure
alike: every answer once on each executor in turn (E2EL, time after the last
token), then rounds of ``1 + steps`` trivial answers per executor, the
executors alternating so a busy moment of the machine hits them all (per-step
overhead: the time after the last token of steps 2.., and of step 1, which
includes starting the session). Each module supplies only how one agent run
is driven (its :data:`Drive`) and its labels. ``code_arguments`` is the
``run_code`` call's JSON arguments as a provider streams them, one token of
code per fragment, for every framework benchmark that streams tool calls.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.harness import RESULTS_DIR, loadavg, write_results

__all__ = [
    "TRIVIAL",
    "Drive",
    "Overhead",
    "Report",
    "Row",
    "Step",
    "code_arguments",
    "compute_answer",
    "measure",
    "render",
    "summary",
    "write_report",
]

#: the one-statement answer whose time after the last token is a step's overhead
TRIVIAL = "x = 1\nprint(x)\n"


def compute_answer(primes_below: int, words: int) -> str:
    """An answer that only computes (no tool): primes by trial division, then word counts.

    ``words`` is how many times the nine-word sentence repeats.
    """
    return f"""\
def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True

primes = [n for n in range(2, {primes_below}) if is_prime(n)]
print(len(primes), primes[-1])
words = ("the quick brown fox jumps over the lazy dog " * {words}).split()
counts = {{}}
for w in words:
    counts[w] = counts.get(w, 0) + 1
print(sorted(counts.items())[:3])
"""


def code_arguments(pieces: Iterable[str]) -> list[str]:
    """``{"code": …}`` in fragments: the opening, one JSON-escaped piece each, the closing."""
    return ['{"code": "', *(json.dumps(p)[1:-1] for p in pieces), '"}']


@dataclass
class Step:
    """One streamed answer: monotonic times of its start, its last token and its result."""

    t0: float
    gen_end: float = 0.0
    result_at: float = 0.0
    ok: bool = False
    detail: str = ""

    @property
    def e2el_s(self) -> float:
        return self.result_at - self.t0

    @property
    def after_last_token_s(self) -> float:
        return self.result_at - self.gen_end


@dataclass
class Row:
    executor: str
    answer: str
    e2el_s: float
    gen_s: float
    after_last_token_s: float
    ok: bool
    detail: str = ""


@dataclass
class Overhead:
    executor: str
    first_step_s: list[float] = field(default_factory=list)  #: one per round
    per_step_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_step_s)

    @property
    def first_median_s(self) -> float:
        return statistics.median(self.first_step_s)


@dataclass
class Report:
    executors: list[str]
    rows: list[Row] = field(default_factory=list)
    overhead: list[Overhead] = field(default_factory=list)
    wall_s: float = 0.0


#: one agent run on ``executor`` whose model streams ``answers`` as successive steps
Drive = Callable[[str, list[str]], list[Step]]


def measure(
    drive: Drive, answers: dict[str, str], executors: list[str], *, rounds: int, steps: int
) -> Report:
    """Every answer on every executor in turn, then ``rounds`` of trivial runs, alternating."""
    report = Report(list(executors))
    started = time.monotonic()
    for name, code in answers.items():
        for executor in executors:  # side by side: each answer on every executor in turn
            (step,) = drive(executor, [code])
            report.rows.append(
                Row(
                    executor,
                    name,
                    step.e2el_s,
                    step.gen_end - step.t0,
                    step.after_last_token_s,
                    step.ok,
                    step.detail,
                )
            )
    overhead = {executor: Overhead(executor) for executor in executors}
    for _ in range(rounds):  # executors alternate, so a busy moment hits them all alike
        for executor in executors:
            done = drive(executor, [TRIVIAL] * (1 + steps))
            assert all(s.ok for s in done), [s.detail for s in done]
            overhead[executor].first_step_s.append(done[0].after_last_token_s)
            overhead[executor].per_step_s.extend(s.after_last_token_s for s in done[1:])
    report.overhead.extend(overhead.values())
    report.wall_s = time.monotonic() - started
    return report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(report: Report) -> dict[str, dict[str, float]]:
    """Per executor, over the answers every executor ran: median E2EL and after-last-token."""
    ran_by_all = {
        r.answer for r in report.rows if all(o.ok for o in report.rows if o.answer == r.answer)
    }
    out: dict[str, dict[str, float]] = {}
    for executor in report.executors:
        rows = [r for r in report.rows if r.executor == executor and r.answer in ran_by_all]
        over = next(o for o in report.overhead if o.executor == executor)
        out[executor] = {
            "answers": float(len(rows)),
            "e2el_median_s": _median([r.e2el_s for r in rows]),
            "after_last_token_median_s": _median([r.after_last_token_s for r in rows]),
            "per_step_overhead_median_s": over.median_s,
            "first_step_overhead_s": over.first_median_s,
        }
    return out


def render(report: Report, *, title: str, names: dict[str, str], first_step: str) -> str:
    """The README table (the first executor is the baseline), then E2EL per answer.

    ``title`` opens the first line; ``names`` labels each executor;
    ``first_step`` heads the first step's column.
    """
    s = summary(report)
    baseline = report.executors[0]
    base = s[baseline]
    every = "both executors" if len(report.executors) == 2 else "every executor"
    lines = [
        f"{title}, the same streamed answers ({int(base['answers'])} answers {every} ran; "
        "medians):",
        "",
        f"| executor | E2EL | vs {baseline} | after the last token | per-step overhead "
        f"| {first_step} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for executor, v in s.items():
        lines.append(
            f"| {names[executor]} | {v['e2el_median_s']:.2f} s "
            f"| {v['e2el_median_s'] / base['e2el_median_s']:.2f}x "
            f"| {v['after_last_token_median_s'] * 1000:.0f} ms "
            f"| {v['per_step_overhead_median_s'] * 1000:.1f} ms "
            f"| {v['first_step_overhead_s'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        "| answer | " + " | ".join(report.executors) + " |",
        "| --- |" + " --- |" * len(report.executors),
    ]
    for answer in dict.fromkeys(r.answer for r in report.rows):
        cells = []
        for executor in report.executors:
            r = next(x for x in report.rows if x.answer == answer and x.executor == executor)
            cells.append(f"{r.e2el_s:.2f} s (+{r.after_last_token_s:.2f})" if r.ok else "failed")
        lines.append(f"| {answer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    stem: str, report: Report, text: str, machine: dict[str, str], plan: dict[str, Any]
) -> None:
    """``text`` to ``bench/results/<stem>.md``; the machine, plan, summary and rows to ``.json``."""
    data = {
        "machine": machine,
        "plan": plan,
        "load average after": loadavg(),
        "wall_s": report.wall_s,
        "summary": summary(report),
        "rows": [asdict(r) for r in report.rows],
        "overhead": [{**asdict(o), "median_s": o.median_s} for o in report.overhead],
    }
    write_results(RESULTS_DIR / f"{stem}.md", text, data, indent=2)
