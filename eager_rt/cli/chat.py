"""``eager chat PROMPT``: ask a real model for Python and run it while it is being written.

The prompt goes to OpenAI (Chat Completions or Responses) or Anthropic
(Messages) with a system prompt asking for Python in a fenced block (or, with
``--tool``, through a ``python`` tool call) written as top-level statements.
The answer streams in; prose is printed as it arrives, each statement runs on
the chosen backend as soon as it is complete, and its output is printed live.
If a statement fails, generation is stopped there and the failure is reported
the way an agent would send it back to the model.

``--base-url`` points the OpenAI client at any OpenAI-compatible server (vLLM,
llama.cpp, Ollama); no API key is needed then. ``--json`` prints one object on
stdout, shaped like ``eager run --json``, plus the model's text and the tokens
an early interruption saved from being generated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from eager_rt import clock
from eager_rt.agent import STREAMABLE_CODE_PROMPT, TurnResult, arun_turn
from eager_rt.cli.common import add_backend_arguments, backend_from_args
from eager_rt.cli.live import LivePrinter
from eager_rt.executor import BackendError
from eager_rt.registry import BackendNotFound
from eager_rt.sources.fences import Segment
from eager_rt.sources.llm import AsyncModelSource, StreamStats

__all__ = ["SYSTEM_PROMPT", "add_parser", "tokens_not_generated"]

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

_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="ask a model for Python and run it while it streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="what the code should do")
    parser.add_argument("--provider", choices=["openai", "anthropic"], required=True)
    parser.add_argument(
        "--api",
        choices=["chat", "responses"],
        default="chat",
        help="OpenAI API: Chat Completions (default; what compatible servers speak) or Responses",
    )
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--base-url", help="API base URL (an OpenAI-compatible server ...)")
    parser.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY / $ANTHROPIC_API_KEY)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="output token limit (4096)")
    parser.add_argument("--system", help="replace the system prompt")
    parser.add_argument(
        "--tool", action="store_true", help="ask for the code as a `python` tool call"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="HTTP timeout of the model request, seconds (120)",
    )
    parser.add_argument("--show-code", action="store_true", help="echo the code to stderr")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_backend_arguments(parser)
    parser.set_defaults(handler=handle)


# -- the request ---------------------------------------------------------------------------


def _prepare(args: argparse.Namespace, key: str) -> tuple[Any, Callable[[], Awaitable[Any]]]:
    """The async client and the call that opens the stream (SDKs imported here, lazily).

    Split so the clock for time to first token starts at the request, not at
    the SDK's import.
    """
    system = args.system or (TOOL_PROMPT if args.tool else SYSTEM_PROMPT)
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
        return client, lambda: client.messages.create(
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
        return client, lambda: client.responses.create(
            model=args.model,
            instructions=system,
            input=args.prompt,
            max_output_tokens=args.max_tokens,
            stream=True,
            **extra,
        )
    extra = {}
    if args.tool:
        extra["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "python",
                    "description": _TOOL_DESCRIPTION,
                    "parameters": _TOOL_SCHEMA,
                },
            }
        ]
    # api.openai.com renamed the limit; compatible servers know the old name
    limit = "max_tokens" if args.base_url else "max_completion_tokens"
    return client, lambda: client.chat.completions.create(
        model=args.model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": args.prompt}],
        stream=True,
        stream_options={"include_usage": True},
        **{limit: args.max_tokens},
        **extra,
    )


def _source(
    args: argparse.Namespace, stream: Any, started: float, prose: TextIO, code: TextIO | None
) -> AsyncModelSource:
    from eager_rt.sources.anthropic import amessages
    from eager_rt.sources.openai import achat_completions, aresponses

    def on_segment(seg: Segment) -> None:
        if seg.kind == "code":
            if code is not None:
                code.write(seg.text)
                code.flush()
        elif seg.kind in ("prose", "other"):
            prose.write(seg.text)
            prose.flush()

    adapter = (
        amessages
        if args.provider == "anthropic"
        else aresponses
        if args.api == "responses"
        else achat_completions
    )
    return adapter(
        stream,
        started=started,
        on_segment=on_segment,
        tools={"python"} if args.tool else None,
        fences=not args.tool,
    )


async def _chat(args: argparse.Namespace, key: str, out: TextIO) -> tuple[TurnResult, str]:
    printer = LivePrinter(out, sys.stderr)
    backend = backend_from_args(args)
    async with backend:
        session = backend.session(cwd=os.getcwd())
        client: Any = None
        try:
            start = session.start(timeout=300)  # the interpreter starts while the model thinks
            starting = asyncio.ensure_future(start)
            try:
                client, request = _prepare(args, key)
                t0 = clock.now()
                stream = await request()
            except BaseException:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                raise
            await starting
            source = _source(args, stream, t0, out, sys.stderr if args.show_code else None)
            turn = await arun_turn(
                source, session, on_event=printer, exec_timeout=args.exec_timeout
            )
            return turn, session.backend_name
        finally:
            if client is not None:
                await client.close()
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


def _record(turn: TurnResult, backend: str) -> dict[str, Any]:
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
    return record


def handle(args: argparse.Namespace) -> int:
    key = args.api_key or os.environ.get(_KEY_ENV[args.provider])
    if not key:
        if not args.base_url:
            print(f"eager chat: set {_KEY_ENV[args.provider]} or pass --api-key", file=sys.stderr)
            return 2
        key = "EMPTY"  # local OpenAI-compatible servers accept any key
    if args.max_tokens <= 0:
        print("eager chat: --max-tokens must be positive", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout
    try:
        turn, backend = asyncio.run(_chat(args, key, out))
    except (BackendNotFound, BackendError) as exc:
        print(f"eager chat: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the request itself failed: auth, unknown model, unreachable
        print(f"eager chat: the request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    stats = turn.stream
    if args.json:
        payload = {
            "runs": [_record(turn, backend)],
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
    saved = tokens_not_generated(stats, max_tokens)
    if saved["stream_closed_early"]:
        parts.append(f"generation stopped early (at most {saved['at_most']} tokens not generated)")
    err.write("eager: " + "; ".join(parts) + "\n")
    err.flush()
