"""eager chat PROMPT: ask a real model for Python and run it while it is being written.

The prompt goes to OpenAI (Chat Completions or Responses), Anthropic
(Messages), Google (Gemini) or any provider LiteLLM speaks to (--provider
litellm --model anthropic/...) with a system prompt asking for Python in a
fenced block (or, with --tool, through a python tool call) written as
top-level statements. The answer streams in; each statement runs on the
chosen backend as soon as it is complete. In a terminal the code is shown as
it streams, each statement marked as it is detected, queued, running, done or
failed, with its output under it; --plain (or a stdout that is not a
terminal) prints the model's prose and the code's output as lines. If a
statement fails, generation is stopped there and the failure is reported the
way an agent would send it back to the model.

--base-url points the client at any OpenAI-compatible server (vLLM,
llama.cpp, Ollama); no API key is needed then. --json prints one object on
stdout, shaped like eager run --json, plus the model's text and the tokens an
early interruption saved from being generated.

Exit codes: 0 the code ran without error; 1 it failed, or the answer held no
code to run (status no_code); 2 a usage error or a failed request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console

from eager_rt import clock
from eager_rt.agent import STREAMABLE_CODE_PROMPT, TurnResult, arun_turn
from eager_rt.cli.checks import UsageError, number
from eager_rt.cli.common import (
    add_backend_arguments,
    add_output_arguments,
    backend_from_args,
    check_output_arguments,
    wants_live_view,
)
from eager_rt.cli.figures import FigureSaver
from eager_rt.cli.live import LivePrinter, safe_write
from eager_rt.cli.report import error_message, image_bundles
from eager_rt.cli.view import LiveView
from eager_rt.executor import BackendError
from eager_rt.live_model import Watcher
from eager_rt.registry import BackendNotFound
from eager_rt.sources.fences import Segment
from eager_rt.sources.llm import AsyncModelSource, StreamStats

__all__ = [
    "KEY_ENV",
    "PROVIDERS",
    "SYSTEM_PROMPT",
    "add_model_arguments",
    "add_parser",
    "api_key",
    "model_source",
    "prepare_request",
    "tokens_not_generated",
]

SYSTEM_PROMPT = (
    "You are a careful Python programmer and data analyst. Answer the user's request by "
    "writing Python code that does the work and prints the results. A short sentence "
    "before the code is fine; put all code in a single ```python fenced block.\n\n"
    + STREAMABLE_CODE_PROMPT
)

TOOL_PROMPT = (
    "You are a careful Python programmer and data analyst. Do the user's request by "
    "calling the `python` tool once with the complete program in its `code` argument.\n\n"
    + STREAMABLE_CODE_PROMPT
)

_TOOL_DESCRIPTION = "Run Python code in a persistent session and return its output."
_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
}

#: where each provider's key is read from; LiteLLM reads each provider's own variables itself
KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
}
PROVIDERS = ["openai", "anthropic", "google", "litellm"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="ask a model for Python and run it while it streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="what the code should do")
    add_model_arguments(parser, required=True)
    parser.add_argument(
        "--show-code",
        action="store_true",
        help="with plain output: echo the code to stderr as it streams",
    )
    add_output_arguments(parser, plain="prose and output", what="code")
    add_backend_arguments(parser)
    parser.set_defaults(handler=handle)


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Which model to ask, through which API, and how (``eager chat``, ``%%eager``)."""
    model = parser.add_argument_group("the model")
    model.add_argument(
        "--provider",
        choices=PROVIDERS,
        required=required,
        help="whose API to call; litellm reaches any provider LiteLLM supports"
        + ("" if required else "; needs --model"),
    )
    model.add_argument(
        "--api",
        choices=["chat", "responses"],
        default="chat",
        help="OpenAI API: Chat Completions (default; what compatible servers speak) or Responses",
    )
    model.add_argument("--model", required=required, help="model name (LiteLLM: provider/model)")
    model.add_argument(
        "--base-url",
        help="API base URL: an OpenAI-compatible server (vLLM, llama.cpp, Ollama) or a proxy",
    )
    model.add_argument(
        "--api-key",
        help="API key (default: $OPENAI_API_KEY / $ANTHROPIC_API_KEY / $GEMINI_API_KEY; "
        "LiteLLM reads its provider's own variable)",
    )
    model.add_argument(
        "--max-tokens", type=int, default=4096, help="output token limit (default 4096)"
    )
    model.add_argument(
        "--system", help="replace the system prompt (default: asks for streamable Python)"
    )
    model.add_argument(
        "--tool",
        action="store_true",
        help="ask for the code as a call of a tool named python, not a fenced block",
    )
    model.add_argument(
        "--request-timeout",
        type=number(above=0.0, maximum=86400.0),
        default=120.0,
        metavar="S",
        help="HTTP timeout of the model request, seconds (120)",
    )


# -- the request ---------------------------------------------------------------------------


Closer = Callable[[], Awaitable[None]]


def api_key(args: argparse.Namespace) -> str | None:
    """The key to send: ``--api-key``, else the provider's variable; a local server needs none.

    Raises :class:`~eager_rt.cli.checks.UsageError` when a key is needed and missing.
    """
    env = KEY_ENV.get(args.provider)
    key: str | None = args.api_key or (os.environ.get(env) if env else None)
    if not key and env is not None:
        if not args.base_url:
            raise UsageError(f"set {env} or pass --api-key")
        key = "EMPTY"  # local OpenAI-compatible servers accept any key
    return key


def prepare_request(
    args: argparse.Namespace, key: str | None
) -> tuple[Closer, Callable[[], Awaitable[Any]]]:
    """How to close the client, and the call that opens the stream (SDKs imported lazily).

    Split so the clock for time to first token starts at the request, not at
    the SDK's import.
    """
    system = args.system or (TOOL_PROMPT if args.tool else SYSTEM_PROMPT)
    if args.provider == "litellm":
        return _prepare_litellm(args, key, system)
    if args.provider == "google":
        return _prepare_google(args, key, system)
    if args.provider == "anthropic":
        import anthropic

        client: Any = anthropic.AsyncAnthropic(
            api_key=key, base_url=args.base_url, timeout=args.request_timeout, max_retries=1
        )
        extra: dict[str, Any] = {}
        if args.tool:
            extra["tools"] = [
                {"name": "python", "description": _TOOL_DESCRIPTION, "input_schema": _TOOL_SCHEMA}
            ]
        return client.close, lambda: client.messages.create(
            model=args.model,
            max_tokens=args.max_tokens,
            system=system,
            messages=[{"role": "user", "content": args.prompt}],
            stream=True,
            **extra,
        )
    import openai

    client = openai.AsyncOpenAI(
        api_key=key, base_url=args.base_url, timeout=args.request_timeout, max_retries=1
    )
    if args.api == "responses":
        extra = {}
        if args.tool:
            extra["tools"] = [
                {
                    "type": "function",
                    "name": "python",
                    "description": _TOOL_DESCRIPTION,
                    "parameters": _TOOL_SCHEMA,
                    "strict": False,
                }
            ]
        return client.close, lambda: client.responses.create(
            model=args.model,
            instructions=system,
            input=args.prompt,
            max_output_tokens=args.max_tokens,
            stream=True,
            **extra,
        )
    extra = _chat_tools(args)
    # api.openai.com renamed the limit; compatible servers know the old name
    limit = "max_tokens" if args.base_url else "max_completion_tokens"
    return client.close, lambda: client.chat.completions.create(
        model=args.model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": args.prompt}],
        stream=True,
        stream_options={"include_usage": True},
        **{limit: args.max_tokens},
        **extra,
    )


def _chat_tools(args: argparse.Namespace) -> dict[str, Any]:
    if not args.tool:
        return {}
    function = {"name": "python", "description": _TOOL_DESCRIPTION, "parameters": _TOOL_SCHEMA}
    return {"tools": [{"type": "function", "function": function}]}


def _prepare_litellm(
    args: argparse.Namespace, key: str | None, system: str
) -> tuple[Closer, Callable[[], Awaitable[Any]]]:
    import litellm
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    litellm.suppress_debug_info = True  # its hints go to stdout, which --json keeps for itself
    extra: dict[str, Any] = _chat_tools(args)
    if key:
        extra["api_key"] = key
    if args.base_url:
        extra["api_base"] = args.base_url

    async def close() -> None:  # LiteLLM keeps its clients in a process-wide cache
        await close_litellm_async_clients()  # type: ignore[no-untyped-call]
        litellm.in_memory_llm_clients_cache.flush_cache()  # type: ignore[no-untyped-call]

    return close, lambda: litellm.acompletion(
        model=args.model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": args.prompt}],
        stream=True,
        max_tokens=args.max_tokens,
        timeout=args.request_timeout,
        num_retries=1,
        **extra,
    )


def _prepare_google(
    args: argparse.Namespace, key: str | None, system: str
) -> tuple[Closer, Callable[[], Awaitable[Any]]]:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=args.base_url, timeout=int(args.request_timeout * 1000))
    client = genai.Client(api_key=key, http_options=options)
    tools: list[Any] | None = None
    if args.tool:
        declaration = types.FunctionDeclaration(
            name="python", description=_TOOL_DESCRIPTION, parameters_json_schema=_TOOL_SCHEMA
        )
        tools = [types.Tool(function_declarations=[declaration])]
    config = types.GenerateContentConfig(
        system_instruction=system, max_output_tokens=args.max_tokens, tools=tools
    )

    async def close() -> None:
        await client.aio.aclose()
        client.close()

    return close, lambda: client.aio.models.generate_content_stream(
        model=args.model, contents=args.prompt, config=config
    )


def model_source(
    args: argparse.Namespace, stream: Any, started: float, watcher: Watcher
) -> AsyncModelSource:
    """The provider's stream as a token source: code pieces and prose go to ``watcher``."""
    from eager_rt.sources.anthropic import amessages
    from eager_rt.sources.google import agenerate_content_stream
    from eager_rt.sources.litellm import acompletion
    from eager_rt.sources.openai import achat_completions, aresponses

    def on_segment(seg: Segment) -> None:
        if seg.kind == "code":
            watcher.code(seg.text)
            if args.show_code:
                safe_write(sys.stderr, seg.text)
        elif seg.kind in ("prose", "other"):
            watcher.prose(seg.text)

    adapter = {
        "anthropic": amessages,
        "google": agenerate_content_stream,
        "litellm": acompletion,
        "openai": aresponses if args.api == "responses" else achat_completions,
    }[args.provider]
    return adapter(
        stream,
        started=started,
        on_segment=on_segment,
        tools={"python"} if args.tool else None,
        fences=not args.tool,
    )


async def _chat(
    args: argparse.Namespace, key: str | None, watcher: LivePrinter | LiveView
) -> tuple[TurnResult, str]:
    backend = backend_from_args(args)
    async with backend:
        session = backend.session(cwd=os.getcwd())
        close: Closer | None = None
        try:
            start = session.start(timeout=300)  # the interpreter starts while the model thinks
            starting = asyncio.ensure_future(start)
            try:
                close, request = prepare_request(args, key)
                t0 = clock.now()
                stream = await request()
            except BaseException:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                raise
            await starting
            source = model_source(args, stream, t0, watcher)
            turn = await arun_turn(
                source, session, on_event=watcher, exec_timeout=args.exec_timeout
            )
            return turn, session.backend_name
        finally:
            if close is not None:
                await close()
            await session.close()


# -- reporting ------------------------------------------------------------------------------


def tokens_not_generated(stats: StreamStats | None, max_tokens: int) -> dict[str, Any]:
    """What an early interruption saved, as far as anyone can know it.

    The provider stops generating when the stream is closed, so the exact number
    of tokens the model would still have written is unknowable; what is known is
    the output limit and how many tokens were generated before the close. The
    bound is ``max_tokens - generated``. ``generated`` is the provider's own
    count when it sent one, else a cl100k count of the text received.
    """
    closed = bool(stats is not None and stats.closed_early)
    if stats is None:
        return {
            "stream_closed_early": False,
            "generated": None,
            "generated_source": None,
            "max_tokens": max_tokens,
            "at_most": 0,
        }
    generated: int | None = None
    source = "usage"
    if stats.complete and stats.output_tokens is not None:
        generated = stats.output_tokens
    else:
        from eager_rt.sources.replay import tokenize_pieces

        received = stats.text + "".join(c.arguments for c in stats.tool_calls)
        generated = len(tokenize_pieces(received))
        source = "estimate"
    at_most = max(0, max_tokens - generated) if closed else 0
    return {
        "stream_closed_early": closed,
        "generated": generated,
        "generated_source": source,
        "max_tokens": max_tokens,
        "at_most": at_most,
    }


def _record(turn: TurnResult, backend: str, images: bool = False) -> dict[str, Any]:
    stats = turn.stream
    tokens = None if stats is None else (stats.output_tokens or stats.deltas)
    window = None
    if stats is not None and stats.first_token_at is not None and stats.ended_at is not None:
        window = stats.ended_at - stats.first_token_at
    tps = tokens / window if tokens and window and window > 0 else None
    if turn.run is not None:
        record: dict[str, Any] = {**turn.run.summary(), "tps": tps}
    else:
        record = {
            "mode": "eager",
            "backend": backend,
            "status": turn.status,
            "tps": tps,
            "gen_s": None if stats is None else stats.duration_s,
            "exec_s": None,
            "nel_s": None,
            "e2el_s": None,
            "chunks": None,
            "batches": None,
            "stdout": turn.data["stdout"],
        }
    if turn.data.get("error"):
        record["error"] = turn.data["error"]
    if images and turn.run is not None:
        record["images"] = image_bundles(turn.run)
    return record


def handle(args: argparse.Namespace) -> int:
    try:
        key = api_key(args)
        if args.max_tokens <= 0:
            raise UsageError("--max-tokens must be positive")
        check_output_arguments(args)
    except UsageError as exc:
        print(f"eager chat: {exc}", file=sys.stderr)
        return 2
    figures = FigureSaver(args.save_figures) if args.save_figures is not None else None
    console = Console(highlight=False) if wants_live_view(args) else None
    watcher: LivePrinter | LiveView
    if console is not None:
        watcher = LiveView(
            console,
            label=f"{args.provider} {args.model} on {args.backend}",
            figures=figures,
            describe_error=lambda run: error_message(run, args.exec_timeout),
        )
    else:
        out = sys.stderr if args.json else sys.stdout
        watcher = LivePrinter(out, sys.stderr, figures=figures)
    try:
        with watcher if isinstance(watcher, LiveView) else contextlib.nullcontext():
            turn, backend = asyncio.run(_chat(args, key, watcher))
    except (BackendNotFound, BackendError) as exc:
        print(f"eager chat: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the request itself failed: auth, unknown model, unreachable
        print(f"eager chat: the request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    stats = turn.stream
    if args.json:
        payload = {
            "runs": [_record(turn, backend, args.json_images)],
            "text": "" if stats is None else stats.text,
            "tokens_not_generated": tokens_not_generated(stats, args.max_tokens),
            "status": turn.status,
            "tool_result": turn.text,
            "stream": None
            if stats is None
            else {k: v for k, v in stats.to_dict().items() if k != "text"},
        }
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_summary(turn, stats, args.max_tokens)
    return 0 if turn.ok else 1


def _print_summary(turn: TurnResult, stats: StreamStats | None, max_tokens: int) -> None:
    err = sys.stderr
    err.write("\n")
    if not turn.ok:
        err.write(turn.text + "\n")
    parts = [f"status {turn.status}"]
    if stats is not None and stats.ttft_s is not None:
        parts.append(f"first token {stats.ttft_s:.2f}s")
    if turn.run is not None:
        run = turn.run
        parts.append(
            f"generation {run.gen_s:.2f}s, execution {run.exec_s:.2f}s, "
            f"after generation {run.nel_s:.2f}s, end to end {run.e2el_s:.2f}s"
        )
    if stats is not None and stats.response_s is not None:
        parts.append(f"whole response {stats.response_s:.2f}s")
    saved = tokens_not_generated(stats, max_tokens)
    if saved["stream_closed_early"]:
        parts.append(f"generation stopped early (at most {saved['at_most']} tokens not generated)")
    err.write("eager: " + "; ".join(parts) + "\n")
    err.flush()
