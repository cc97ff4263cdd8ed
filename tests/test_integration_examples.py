"""The framework examples (``examples/*_agent.py``) run offline, as a reader would run them.

Each runs in its own process against the repository's fake OpenAI server
(``examples/_common.py``): the first ``run_code`` call fails at its third
statement, the repair reuses the variable the session kept, and the agent
answers. The test reads what the example prints, so a change to the shared
module or to an adapter that breaks an example fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAILED = "TypeError: can only concatenate str"
ANSWER = "Lima is the warmer of the two today."

#: the example, extra arguments, and the line that says the repair ran
EXAMPLES = [
    ("langgraph_agent.py", [], "warmest: Lima"),
    ("openai_agents_agent.py", [], "warmest: Lima"),
    ("openai_agents_agent.py", ["--api", "chat"], "warmest: Lima"),
    ("pydantic_ai_agent.py", [], "warmest: Lima"),
    ("smolagents_agent.py", [], "warmest: Lima"),
]


@pytest.mark.parametrize(
    ("script", "extra", "repaired"),
    EXAMPLES,
    ids=[" ".join([s, *e]) for s, e, _ in EXAMPLES],
)
def test_example_runs_offline(script: str, extra: list[str], repaired: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    # the first call failed at its third statement; the 20 prints after it never ran
    assert FAILED in out
    assert "{'Oslo': 4.0, 'Lima': 19.5}" in out  # what ran before it printed
    assert "\n19\n" not in out
    # the repair used `temps` from the session, and the agent answered
    assert out.index(repaired) > out.index(FAILED)
    assert out.rstrip().endswith(ANSWER)
