"""Importing one framework adapter never imports another framework (each is an optional extra)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: each adapter, and the frameworks (by top-level module) it is allowed to import
ADAPTERS = {
    "pydantic_ai": {"pydantic_ai"},
    "smolagents": {"smolagents"},
    "langgraph": {"langgraph", "langchain_core"},
    "openai_agents": {"agents"},
}
FRAMEWORKS = sorted({m for own in ADAPTERS.values() for m in own} | {"litellm"})


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_importing_the_adapter_imports_no_other_framework(adapter: str) -> None:
    probe = (
        f"import json, sys, eager_rt.integrations.{adapter}\n"
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    imported = set(json.loads(out.stdout))
    assert imported - ADAPTERS[adapter] == set()
    assert ADAPTERS[adapter] & imported  # the probe sees the adapter's own framework
