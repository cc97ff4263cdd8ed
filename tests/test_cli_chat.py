"""``eager chat`` against the fake model server, in process."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from eager_rt.agent import STREAMABLE_CODE_PROMPT
from eager_rt.cli import main
from tests.cli_helpers import RUN_KEYS
from tests.fake_llm import FakeLLM, Faults, Reply, pieces, tool_fragments
from tests.fake_llm.gemini import FakeGemini

CODE = "values = [2, 4, 6]\nprint('mean', sum(values) / len(values))\n"


def fenced(code: str) -> Reply:
    return Reply(text=["Computing the mean.\n```python\n", *pieces(code, 4), "```\nDone.\n"])


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM: no fetch at import


def chat(llm: FakeLLM, *extra: str, provider: str = "openai") -> list[str]:
    url = llm.openai_url if provider == "openai" else llm.url
    return [
        "chat",
        "--provider",
        provider,
        "--base-url",
        url,
        "--model",
        "fake-model",
        "--request-timeout",
        "30",
        *extra,
        "compute the mean",
    ]


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main([*argv[:-1], "--json", argv[-1]])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # exactly one JSON object on stdout
    return code, json.loads(lines[0])


def test_plain_output_prints_prose_and_results_live(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLLM(fenced(CODE)) as llm:
        code = main(chat(llm))
        body = llm.wait_done(0).body
    out = capsys.readouterr()
    assert code == 0
    assert "Computing the mean." in out.out and "Done." in out.out
    assert "mean 4.0" in out.out
    assert "status ok" in out.err
    system = body["messages"][0]
    assert system["role"] == "system" and STREAMABLE_CODE_PROMPT in system["content"]
    assert body["messages"][1] == {"role": "user", "content": "compute the mean"}
    assert body["stream"] is True and body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("provider", "api"), [("openai", "chat"), ("openai", "responses"), ("anthropic", None)]
)
def test_json_output_has_the_run_shape(
    provider: str, api: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--api", api] if api else []
    with FakeLLM(fenced(CODE)) as llm:
        code, payload = run_json(chat(llm, *extra, provider=provider), capsys)
    assert code == 0
    (run,) = payload["runs"]
    assert set(run) >= RUN_KEYS
    assert run["status"] == "ok" and run["mode"] == "eager" and run["backend"] == "local"
    assert run["stdout"] == "mean 4.0\n"
    assert run["chunks"] == 2
    assert payload["text"] == "".join(fenced(CODE).text)
    saved = payload["tokens_not_generated"]
    assert saved["stream_closed_early"] is False and saved["at_most"] == 0
    assert payload["stream"]["provider"] == provider


def test_tool_mode_sends_the_tool_and_runs_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    reply = Reply(tools=[("python", tool_fragments(CODE))])
    with FakeLLM(reply) as llm:
        code, payload = run_json(chat(llm, "--tool", provider="anthropic"), capsys)
        body = llm.wait_done(0).body
    assert code == 0
    assert payload["runs"][0]["stdout"] == "mean 4.0\n"
    (tool,) = body["tools"]
    assert tool["name"] == "python" and tool["input_schema"]["required"] == ["code"]


def test_early_interruption_reports_tokens_not_generated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failing = "print('start')\nvalue = int('seven')\n" + "print(value)\n" * 80
    with FakeLLM(fenced(failing), Faults(hold_after=30, hold_timeout=20)) as llm:
        code, payload = run_json(chat(llm, "--max-tokens", "1000"), capsys)
        log = llm.wait_done(0)
    assert code == 1
    (run,) = payload["runs"]
    assert run["status"] == "error" and run["error"]["ename"] == "ValueError"
    assert run["stdout"] == "start\n"
    saved = payload["tokens_not_generated"]
    assert saved["stream_closed_early"] is True
    assert saved["generated_source"] == "estimate"
    assert 0 < saved["generated"] < 1000
    assert saved["at_most"] == 1000 - saved["generated"]
    assert "Nothing after the failing statement ran" in payload["tool_result"]
    assert log.client_closed and log.events_unsent > 0


def test_stream_failure_exits_1_with_a_precise_status(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLLM(fenced(CODE), Faults(error_after=3, error_message="Overloaded")) as llm:
        code, payload = run_json(chat(llm, provider="anthropic"), capsys)
    assert code == 1
    assert payload["status"] == "stream_error"
    assert payload["runs"][0]["status"] == "stream_error"
    assert "Overloaded" in payload["tool_result"]


def test_missing_api_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["chat", "--provider", "anthropic", "--model", "m", "hello"])
    assert code == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err


def test_refused_request_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLLM(fenced(CODE), status=401) as llm:
        code = main(chat(llm))
    assert code == 2
    assert "request failed" in capsys.readouterr().err


def test_an_answer_without_code_exits_1_with_its_own_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reply = Reply(text=["Use the built-in sum() and len(): ", "mean = sum(v) / len(v).\n"])
    with FakeLLM(reply) as llm:
        code, payload = run_json(chat(llm), capsys)
    assert code == 1
    assert payload["status"] == "no_code"
    assert payload["runs"][0]["status"] == "no_code"
    assert payload["tool_result"] == "The response contained no Python code to run."


def test_a_fence_in_a_list_item_runs(capsys: pytest.CaptureFixture[str]) -> None:
    body = "".join(f"    {line}\n" for line in CODE.splitlines())
    reply = Reply(text=["Steps:\n\n1. Compute the mean:\n\n    ```python\n", body, "    ```\n"])
    with FakeLLM(reply) as llm:
        code, payload = run_json(chat(llm), capsys)
    assert code == 0
    assert payload["runs"][0]["stdout"] == "mean 4.0\n"


def test_the_whole_response_time_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    reply = fenced(CODE)
    reply.text += [f"Some explanation, part {i}. " for i in range(30)]
    with FakeLLM(reply) as llm:
        code, payload = run_json(chat(llm), capsys)
    (run,) = payload["runs"]
    assert code == 0
    assert run["response_s"] is not None
    assert payload["stream"]["response_s"] == run["response_s"]
    # timed to the stream's last event: read through the explanation to the final event
    assert payload["stream"]["complete"] and not payload["stream"]["closed_early"]
    assert payload["text"].endswith("Some explanation, part 29. ")


@pytest.mark.parametrize("form", ["fences", "tool"])
def test_google_provider(form: str, capsys: pytest.CaptureFixture[str]) -> None:
    reply = fenced(CODE) if form == "fences" else Reply(tools=[("python", tool_fragments(CODE))])
    extra = ["--tool"] if form == "tool" else []
    with FakeGemini(reply) as llm:
        code, payload = run_json(chat(llm, *extra, provider="google"), capsys)
        body = llm.wait_done(0).body
    assert code == 0, payload
    assert payload["runs"][0]["stdout"] == "mean 4.0\n"
    assert payload["stream"]["provider"] == "google"
    assert STREAMABLE_CODE_PROMPT in body["systemInstruction"]["parts"][0]["text"]
    assert body["generationConfig"]["maxOutputTokens"] == 4096
    if form == "tool":
        (tool,) = body["tools"][0]["functionDeclarations"]
        assert tool["name"] == "python"


@pytest.mark.parametrize(
    ("model", "api"), [("openai/fake", "chat"), ("anthropic/fake", "messages")]
)
def test_litellm_provider(model: str, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeGemini(fenced(CODE), keep_alive=False) as llm:
        url = llm.openai_url if api == "chat" else llm.url
        argv = [
            "chat",
            "--provider",
            "litellm",
            "--base-url",
            url,
            "--api-key",
            "test",
            "--model",
            model,
            "--request-timeout",
            "30",
            "compute the mean",
        ]
        code, payload = run_json(argv, capsys)
        log = llm.wait_done(0)
    assert code == 0, payload
    assert log.api == api
    assert payload["runs"][0]["stdout"] == "mean 4.0\n"
    assert payload["stream"]["provider"] == "litellm"


FIGURE = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3])\nplt.show()\nprint('drawn')\n"
)


def test_figures_are_saved_and_carried_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    with FakeLLM(fenced(FIGURE)) as llm:
        code, payload = run_json(chat(llm, "--save-figures", str(out), "--json-images"), capsys)
    assert code == 0, payload
    [bundle] = payload["runs"][0]["images"]
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (out / "figure-001.png").read_bytes() == png
    assert main(chat(llm, "--json-images")) == 2
    assert "eager chat: --json-images needs --json" in capsys.readouterr().err
