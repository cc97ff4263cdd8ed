"""The prompt benchmark's classifier: which answers give eager execution something to overlap."""

from __future__ import annotations

import pytest

from bench.prompt_effect import classify

WRAPPED = [
    "import pandas as pd\ndef main():\n    df = pd.read_csv('x.csv')\n    print(df.mean())\n"
    "main()\n",
    "def run():\n    print(1)\n\nif __name__ == '__main__':\n    run()\n",
    "N = 3\ndef go():\n    return N\nresult = go()\n",
]
STREAMABLE = [
    "import pandas as pd\ndf = pd.read_csv('x.csv')\nprint(df.shape)\nprint(df.mean())\n",
    "def f(x):\n    return x * 2\nprint(f(2))\nprint(f(3))\n",
]


@pytest.mark.parametrize("code", WRAPPED)
def test_work_started_by_the_last_statement_is_wrapped(code: str) -> None:
    verdict = classify(code)
    assert verdict.kind == "wrapped" and verdict.early_share == 0.0


@pytest.mark.parametrize("code", STREAMABLE)
def test_top_level_work_is_streamable(code: str) -> None:
    verdict = classify(code)
    assert verdict.kind == "streamable"
    last_line = code.splitlines(keepends=True)[-1]
    assert verdict.early_share == pytest.approx(1 - len(last_line) / len(code))


def test_no_code_and_invalid_code() -> None:
    assert classify("").kind == "no code"
    assert classify('"""only a docstring"""\n').kind == "no code"
    assert classify("def f(:\n").kind == "invalid"
