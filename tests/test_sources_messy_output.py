"""Real models' messy output: each test holds the exact text that once broke a run.

The text goes through the unmodified OpenAI SDK (against the loopback server),
the Chat Completions adapter, the runtime and a local session, cut in small
pieces as a model streams it; where the fence extractor alone is the point,
it is also checked one character at a time.
"""

from __future__ import annotations

import json

import openai
import pytest

from eager_rt.result import RunResult
from eager_rt.runtime import run_stream
from eager_rt.sources.fences import FenceExtractor, Segment, info_language
from eager_rt.sources.llm import ModelSource, ModelStreamError
from eager_rt.sources.openai import chat_completions
from eager_rt.sync import SyncSession
from tests.fake_llm import FakeLLM, Reply


def pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run_reply(reply: Reply, session: SyncSession) -> tuple[RunResult, ModelSource]:
    """One streamed answer through the SDK, the adapter and the runtime."""
    with FakeLLM(reply) as llm:
        client = openai.OpenAI(base_url=llm.openai_url, api_key="test", max_retries=0,
                               timeout=30.0, _strict_response_validation=True)
        try:
            stream = client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "go"}], stream=True)
            source = chat_completions(stream)
            result = run_stream(source, session, timeout=60)
        finally:
            client.close()
    return result, source


def run_text(text: str, session: SyncSession) -> RunResult:
    return run_reply(Reply(text=pieces(text)), session)[0]


def split(text: str, step: int | None = None) -> dict[str, str]:
    """Text per segment kind; ``step`` feeds that many characters at a time."""
    extractor = FenceExtractor()
    segs: list[Segment] = []
    size = step or len(text) or 1
    for i in range(0, len(text), size):
        segs += extractor.feed(text[i : i + size])
    segs += extractor.close()
    kinds: dict[str, str] = {"prose": "", "fence": "", "code": "", "other": ""}
    for seg in segs:
        kinds[seg.kind] += seg.text
    return kinds


def same_split_at_any_rate(text: str) -> dict[str, str]:
    whole = split(text)
    assert split(text, 1) == whole == split(text, 3)
    return whole


# -- \r\n line ends ---------------------------------------------------------------------


def test_crlf_closing_fence_ends_the_block(sync_session: SyncSession) -> None:
    text = "```python\r\nprint(1)\r\n```\r\nDone.\r\n"  # the issue's exact text
    kinds = same_split_at_any_rate(text)
    assert kinds["code"] == "print(1)\r\n"
    assert kinds["prose"] == "Done.\r\n"
    assert kinds["fence"] == "```python\r\n```\r\n"
    result = run_text(text, sync_session)
    assert result.status == "ok" and result.stdout == "1\n"
    assert "Done" not in result.code


# -- fences inside list items --------------------------------------------------------------

LIST_ANSWER = (
    "Here is the plan:\n\n"
    "1. Load the numbers:\n\n"
    "    ```python\n"
    "    values = [3, 1, 2]\n"
    "    ```\n\n"
    "2. Print them sorted:\n\n"
    "    ```python\n"
    "    print(sorted(values))\n"
    "    ```\n"
)


def test_fences_indented_under_list_items_run(sync_session: SyncSession) -> None:
    kinds = same_split_at_any_rate(LIST_ANSWER)
    assert kinds["code"] == "values = [3, 1, 2]\nprint(sorted(values))\n"
    assert "Print them sorted" in kinds["prose"]
    result = run_text(LIST_ANSWER, sync_session)
    assert result.status == "ok", result.error
    assert result.stdout == "[1, 2, 3]\n"


def test_bullets_and_nested_lists_set_how_far_a_fence_may_be_indented() -> None:
    text = (
        "- Load:\n  ```python\n  a = 1\n  ```\n"
        "- Nested:\n  - inner step\n      ```py\n      b = 2\n      ```\n"
    )
    assert same_split_at_any_rate(text)["code"] == "a = 1\nb = 2\n"


def test_a_list_ends_where_commonmark_ends_it() -> None:
    # after a blank line, a column-0 paragraph closes the item: a 4-space line is then
    # an indented code block, not a fence (as outside any list)
    text = "1. Item\n\nA paragraph.\n\n    ```python\n    x = 1\n    ```\n"
    assert split(text)["code"] == ""
    # a lazy continuation line (no blank line before it) keeps the item open
    lazy = "1. Item\ncontinued here\n    ```python\n    x = 1\n    ```\n"
    assert split(lazy)["code"] == "x = 1\n"


# -- info strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "language"),
    [
        ("python:squares.py", "python"),  # Qiita / Zenn / HackMD: language, then a file name
        ("{python}", "python"),  # Quarto / R Markdown chunks
        ("{.python}", "python"),  # Pandoc attributes
        ("{python, echo=FALSE}", "python"),
        ("python title=x", "python"),  # Docusaurus, MkDocs Material
        ("Python3 {linenos=true}", "python3"),  # Hugo
        ("{=html}", "=html"),  # Pandoc raw block: not a language we run
        ("js:app.js", "js"),
        ("", ""),
    ],
)
def test_info_strings_name_the_language_as_renderers_read_it(info: str, language: str) -> None:
    assert info_language(info) == language


@pytest.mark.parametrize("info", ["python:squares.py", "{python}", "python title=x"])
def test_python_info_strings_from_the_issue_run(info: str, sync_session: SyncSession) -> None:
    text = f"Squares:\n```{info}\nprint([n * n for n in range(4)])\n```\n"
    result = run_text(text, sync_session)
    assert result.status == "ok", result.error
    assert result.stdout == "[0, 1, 4, 9]\n"


# -- code indented inside a column-0 fence ------------------------------------------------


def test_code_indented_inside_the_fence_is_dedented(sync_session: SyncSession) -> None:
    text = (
        "```python\n"
        "    import math\n"
        "    for i in range(2):\n"
        "        print(i)\n"
        "\n"
        "    print(math.sqrt(16))\n"
        "```\n"
    )
    kinds = same_split_at_any_rate(text)
    assert kinds["code"] == (
        "import math\nfor i in range(2):\n    print(i)\n\nprint(math.sqrt(16))\n"
    )
    result = run_text(text, sync_session)
    assert result.status == "ok", result.error  # was: IndentationError: unexpected indent
    assert result.stdout == "0\n1\n4.0\n"


def test_dedent_removes_only_what_a_line_has() -> None:
    # the first code line sets it; a less indented line loses its own indentation only
    text = "```python\n\t\tx = 1\n\ty = 2\n\t\t\tz = 3\n```\n"
    assert split(text, 1)["code"] == "x = 1\ny = 2\n\tz = 3\n"


# -- REPL transcripts ------------------------------------------------------------------------

TRANSCRIPT = (
    "In the interpreter:\n"
    "```python\n"
    ">>> data = [1, 2, 3]\n"
    ">>> sum(data)\n"
    "6\n"
    ">>> for x in data:\n"
    "...     print(x * 2)\n"
    "...\n"
    "2\n"
    "4\n"
    "6\n"
    ">>> print('mean', sum(data) / len(data))\n"
    "mean 2.0\n"
    "```\n"
)


def test_repl_transcript_runs_its_statements_and_skips_the_echo(
    sync_session: SyncSession,
) -> None:
    kinds = same_split_at_any_rate(TRANSCRIPT)
    assert kinds["code"] == (
        "data = [1, 2, 3]\nsum(data)\nfor x in data:\n    print(x * 2)\n\n"
        "print('mean', sum(data) / len(data))\n"
    )
    assert kinds["other"] == "6\n2\n4\n6\nmean 2.0\n"  # shown, never run
    result = run_text(TRANSCRIPT, sync_session)
    assert result.status == "ok", result.error
    assert result.stdout == "2\n4\n6\nmean 2.0\n"


def test_pycon_blocks_run_and_prompts_count_only_at_a_line_start() -> None:
    text = "```pycon\n>>> s = '>>> not a prompt'\n>>> s\n'>>> not a prompt'\n```\n"
    kinds = split(text, 2)
    assert kinds["code"] == "s = '>>> not a prompt'\ns\n"
    assert kinds["other"] == "'>>> not a prompt'\n"


def test_code_that_only_looks_like_a_prompt_later_is_plain_code() -> None:
    # the first line decides: no prompt there, no transcript
    text = "```python\nx = 1\n>>> y\n```\n"
    assert split(text, 1)["code"] == "x = 1\n>>> y\n"


# -- the output limit after a complete statement ---------------------------------------------


def _length_failure(result: RunResult) -> ModelStreamError:
    assert result.status == "source_error"
    assert result.error is not None and isinstance(result.error.cause, ModelStreamError)
    assert result.error.cause.kind == "length"
    return result.error.cause


@pytest.mark.parametrize("form", ["fences", "tool"])
def test_cut_after_a_complete_statement_says_everything_ran(
    form: str, sync_session: SyncSession
) -> None:
    code = "total = 0\nfor n in range(4):\n    total += n\nprint(total)\n"
    if form == "fences":
        reply = Reply(text=["```python\n", *pieces(code)], finish="length")
    else:
        cut = json.dumps({"code": code})[: -len('"}')]  # the JSON string is still open
        reply = Reply(tools=[("python", pieces(cut, 7))], finish="length")
    result, _ = run_reply(reply, sync_session)
    error = _length_failure(result)
    assert result.stdout == "6\n"
    assert "last statement was not run" not in error.message
    assert "every statement received ran" in error.message
    assert result.error is not None and not result.error.not_run.strip()


def test_cut_inside_a_statement_still_says_it_was_not_run(sync_session: SyncSession) -> None:
    code = "print('first')\nfor n in range(4):\n    print(n)\n"  # the loop may still grow
    reply = Reply(text=["```python\n", *pieces(code)], finish="length")
    result, _ = run_reply(reply, sync_session)
    error = _length_failure(result)
    assert result.stdout == "first\n"
    assert "its last statement was not run" in error.message
    assert result.error is not None and "for n in range(4)" in result.error.not_run


# -- no code at all ----------------------------------------------------------------------------


def test_a_response_without_code_is_its_own_status(sync_session: SyncSession) -> None:
    text = "You can compute it with the built-in sum() function; no code needed.\n"
    result = run_text(text, sync_session)
    assert result.status == "no_code"
    assert not result.ok
    assert result.code == ""


def test_code_of_only_comments_is_no_code(sync_session: SyncSession) -> None:
    result = run_text("```python\n# nothing to do here\n```\n", sync_session)
    assert result.status == "no_code"


# -- the whole response's time ------------------------------------------------------------------


def test_response_time_counts_the_prose_after_the_code(sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", "print(1)\n", "```\n", *pieces("Prose after. " * 40)])
    result, source = run_reply(reply, sync_session)
    assert result.status == "ok"
    stats = source.stats
    assert result.response_s is not None and result.response_s == stats.response_s
    # the response is timed to its last event: the stream was read through the prose
    # after the code, to the provider's final event, not only to the end of the code
    assert stats.last_event_at is not None
    assert result.response_s == stats.last_event_at - stats.started
    assert stats.complete and not stats.closed_early
    assert stats.prose.endswith("Prose after. " * 40)
    assert result.summary()["response_s"] == result.response_s


def test_the_run_is_measured_from_the_request(sync_session: SyncSession) -> None:
    with FakeLLM(Reply(text=["```python\n", "x = 1\n", "```\n"])) as llm:
        client = openai.OpenAI(base_url=llm.openai_url, api_key="test", max_retries=0,
                               timeout=30.0)
        try:
            stream = client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "go"}], stream=True)
            source = chat_completions(stream, started=0.0)  # a reading long before the run
            result = run_stream(source, sync_session, timeout=60)
        finally:
            client.close()
    # the runtime takes the source's start as its own: every figure shares the origin
    assert source.started_at == 0.0
    assert result.ttft_s == pytest.approx(source.stats.ttft_s, abs=0.05)
