"""How often does each system prompt get code that can run while it is written?

A model that wraps its whole program in ``main()`` (or an ``if __name__ ==
"__main__":`` block) called at the end gives eager execution nothing to
overlap: the one statement that does the work completes with the last token.
This asks a model served behind any OpenAI-compatible endpoint (a llama.cpp
``llama-server`` on loopback, for instance) the same data-analysis questions
under each prompt variant and classifies every answer:

* ``wrapped``: the work sits in functions or a ``__main__`` block started by the
  last statement, so nothing can run early;
* ``streamable``: top-level statements do the work in order;
* ``no code``: the answer has no runnable Python block.

It also reports the *early share*: the fraction of the code's characters in
statements complete before the last one (what eager execution can overlap).
Questions are read from the DABench files beside the project (never copied).

    python -m bench.prompt_effect --base-url http://127.0.0.1:8080/v1 --questions 30
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eager_rt.agent import STREAMABLE_CODE_PROMPT
from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.fences import code_from_fences

#: the plain request every variant starts from
BASE = "Answer with Python code in one ```python block. The data file is {file}."

#: candidates measured against the shipped prompt
SHORT = (
    "Write a flat script: top-level statements only, in the order they run. No main() "
    "function and no `if __name__ == \"__main__\":` block. Print each result as soon as "
    "it is computed."
)
EXAMPLE = """Write it like this, flat, printing as you go:
```python
import pandas as pd
df = pd.read_csv("data.csv")
print(df.shape)
total = df["amount"].sum()
print(round(total, 2))
```
Never like this (nothing runs until the end):
```python
def main():
    df = pd.read_csv("data.csv")
    print(df["amount"].sum())
main()
```"""

COMPACT = (
    "Your code runs statement by statement while you write it. Write top-level "
    "statements in the order they run (no main() function, no `if __name__` block) and "
    "print results as you go."
)

VARIANTS: dict[str, str] = {
    "plain": BASE,
    "streamable": BASE + "\n\n" + STREAMABLE_CODE_PROMPT,
    "short": BASE + " " + SHORT,
    "compact": BASE + " " + COMPACT,
    "example": BASE + "\n\n" + EXAMPLE,
    "streamable+example": BASE + "\n\n" + STREAMABLE_CODE_PROMPT + "\n" + EXAMPLE,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  #: "wrapped", "streamable", "no code", "invalid"
    early_share: float  #: characters in statements complete before the last one


def classify(code: str) -> Verdict:
    """Judge one answer's code by its top-level statements."""
    if not code.strip():
        return Verdict("no code", 0.0)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return Verdict("invalid", 0.0)
    body = [s for s in tree.body if not _is_docstring(s)]
    if not body:
        return Verdict("no code", 0.0)
    lines = code.splitlines(keepends=True)
    last = body[-1]
    start_last = sum(len(x) for x in lines[: last.lineno - 1])
    early = start_last / max(len(code), 1)
    defined = {s.name for s in body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    work = [
        s
        for s in body
        if not isinstance(
            s, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        )
        and not _is_constant_assign(s)
    ]
    if _is_main_guard(last) or (len(work) == 1 and _calls_defined(work[0], defined)):
        return Verdict("wrapped", 0.0)
    return Verdict("streamable", early)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _is_constant_assign(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(
        stmt.value, ast.Constant
    )


def _is_main_guard(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "__name__" in ast.unparse(stmt.test)


def _calls_defined(stmt: ast.stmt, defined: set[str]) -> bool:
    """A statement whose work is one call of a function this code defined."""
    value = getattr(stmt, "value", None)
    if isinstance(stmt, ast.Expr | ast.Assign) and isinstance(value, ast.Call):
        func = value.func
        return isinstance(func, ast.Name) and func.id in defined
    return False


def questions(path: Path, count: int, skip: int = 0) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return items[skip : skip + count]


def ask(base_url: str, model: str, system: str, question: str, seed: int) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="none", timeout=300)
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        temperature=0.7,
        seed=seed,
        max_tokens=512,
    )
    return reply.choices[0].message.content or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="local")
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--skip", type=int, default=0, help="start after this many questions")
    parser.add_argument("--samples", type=int, default=1, help="answers per question")
    parser.add_argument(
        "--dabench",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "dabench",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    qs = questions(args.dabench / "da-dev-questions.jsonl", args.questions, args.skip)
    report: dict[str, Any] = {"model": args.model, "questions": len(qs), "samples": args.samples}
    for name in args.variants.split(","):
        template = VARIANTS[name]
        verdicts: list[Verdict] = []
        began = time.monotonic()
        for q in qs:
            system = template.format(file=q["file_name"])
            for k in range(args.samples):
                seed = 1000 * k + q["id"]
                text = ask(args.base_url, args.model, system, q["question"], seed)
                code = "".join(p for p in code_from_fences([text]) if not is_boundary(p))
                verdicts.append(classify(code))
        kinds = [v.kind for v in verdicts]
        row = {
            kind: kinds.count(kind) / len(kinds)
            for kind in ("streamable", "wrapped", "no code", "invalid")
        }
        with_code = [v for v in verdicts if v.kind in ("streamable", "wrapped")]
        row["avoids_wrapping"] = (
            sum(v.kind == "streamable" for v in with_code) / len(with_code) if with_code else 0.0
        )
        shares = [v.early_share for v in with_code]
        row["early_share_mean"] = statistics.fmean(shares) if shares else 0.0
        row["answers"] = len(verdicts)
        row["seconds"] = round(time.monotonic() - began, 1)
        report[name] = row
        print(name, json.dumps(row), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
