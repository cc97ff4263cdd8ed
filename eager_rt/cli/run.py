"""eager run SCRIPT: replay a script as a model would stream it, and run it eagerly.

The script is cut into tokens and streamed at --tps tokens per second; its
statements run on the chosen backend while later tokens are still arriving.
--mode both runs the serial baseline (the whole program generated first,
then run) and the eager run on fresh sessions, one after the other, and
reports what the eager run saved. The session runs in the script's own
directory so relative data paths work.

In a terminal the code is shown as it streams, each statement marked as it is
detected, queued, running, done or failed, with its output under it; --plain
prints only the output, as when stdout is not a terminal.

Host tools: --tools MODULE:ATTR imports MODULE (the current directory is
searched first) and takes ATTR: a list of tools, or one function or
eager_rt.tool(...) declaration. The script calls them by name, as generated
code would; they run in this process. Tools that require approval are denied
(there is no one to ask). --mode both runs the script twice, so its tools are
called twice.

Exit codes: 0 every run ended ok, 1 a run failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from eager_rt.cli.checks import UsageError, number, read_script, writable_file
from eager_rt.cli.common import (
    add_backend_arguments,
    add_output_arguments,
    backend_from_args,
    check_output_arguments,
    wants_live_view,
)
from eager_rt.cli.figures import FigureSaver
from eager_rt.cli.live import LivePrinter, safe_write
from eager_rt.cli.report import (
    JSON_OUTPUT_LIMIT,
    cap_output,
    clean_evalue,
    error_message,
    image_bundles,
    print_plain_summary,
    print_rich_summary,
    savings,
)
from eager_rt.cli.view import LiveView
from eager_rt.executor import BackendError, Session
from eager_rt.latency import LatencyModel
from eager_rt.live_model import Watched, Watcher
from eager_rt.registry import BackendNotFound
from eager_rt.result import RunResult
from eager_rt.runtime import Mode, arun_stream
from eager_rt.sources.replay import replay
from eager_rt.timeline import FORMATS
from eager_rt.tools import Tool, as_tools

__all__ = [
    "add_parser",
    "add_replay_arguments",
    "add_run_arguments",
    "add_tool_arguments",
    "load_tools",
    "measure_setup",
    "replay_run",
    "savings",
    "tools_from_args",
]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="replay a script as a token stream and run it while it streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("script", type=Path, help="the Python script to replay")
    add_replay_arguments(parser, "script")
    add_run_arguments(parser)
    out = add_output_arguments(parser, plain="the script's output", what="script")
    out.add_argument(
        "--json-output-limit",
        type=int,
        default=JSON_OUTPUT_LIMIT,
        metavar="CHARS",
        help=f"with --json: keep at most this many characters of each run's stdout, the "
        f"head and the tail, with a notice of what was dropped; 0 keeps all "
        f"(default {JSON_OUTPUT_LIMIT:,})",
    )
    out.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="draw the runs' timeline to FILE: .png, .svg or .html (needs matplotlib)",
    )
    add_tool_arguments(parser, "script")
    add_backend_arguments(parser)
    parser.set_defaults(handler=handle)


def add_replay_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """How ``what`` (the script, the cell) is streamed as a model would write it."""
    stream = parser.add_argument_group("the token stream")
    stream.add_argument(
        "--tps",
        type=number(minimum=0.1, maximum=1e6),
        default=50.0,
        help=f"tokens per second the {what} is streamed at, 0.1 to 1e6 (default 50)",
    )
    stream.add_argument(
        "--ttft",
        type=number(minimum=0.0, maximum=3600.0),
        default=0.0,
        metavar="S",
        help="time to first token in seconds, 0 to 3600 (default 0)",
    )
    stream.add_argument(
        "--tokenizer",
        choices=["auto", "cl100k", "approx"],
        default="auto",
        help=f"how the {what} is cut into tokens: cl100k (GPT-4's tokenizer, needs "
        "eager_rt[tokenizer]), approx (an imitation of it), auto (cl100k when installed)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How the runtime runs the stream: mode, batching, gating, what an error does."""
    runtime = parser.add_argument_group("how it runs")
    runtime.add_argument(
        "--mode",
        choices=["eager", "serial", "both"],
        default="eager",
        help="eager: run each statement as soon as it is complete (default); serial: "
        "generate the whole program first, then run it; both: serial, then eager, "
        "each on a fresh session, and the savings",
    )
    runtime.add_argument(
        "--no-batching",
        action="store_true",
        help="one execution per statement (default: statements that are ready together "
        "run as one execution)",
    )
    runtime.add_argument(
        "--no-gating",
        action="store_true",
        help="run def and class statements at once (default: held until the code uses them "
        "or the stream ends)",
    )
    runtime.add_argument(
        "--on-error",
        choices=["interrupt", "continue"],
        default="interrupt",
        help="stop generation at the first error (default), or keep generating",
    )
    return runtime


def add_tool_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The host tools ``what`` (the script, the code) may call, and how they are run."""
    tools = parser.add_argument_group("host tools")
    tools.add_argument(
        "--tools",
        dest="tools",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help=f"host tools the {what} may call: ATTR of MODULE is a list of tools, or one "
        "function or eager_rt.tool(...); repeatable (e.g. --tools mytools:TOOLS)",
    )
    tools.add_argument(
        "--speculate",
        action="store_true",
        help=f"start calls of read-only tools while the {what} is still streaming",
    )
    tools.add_argument(
        "--hold-side-effects",
        action="store_true",
        help="run statements that mention a tool that is not read-only only once the "
        f"{what} has streamed to its end",
    )


def load_tools(spec: str) -> list[Tool | Callable[..., Any]]:
    """The tools named by ``MODULE:ATTR`` (ATTR may be dotted); errors say what is wrong.

    ATTR is a list (or tuple, set, or dict of name -> tool) of functions and
    :func:`eager_rt.tool` declarations, or a single one. The current directory
    is searched first, as ``python -m`` would.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--tools expects MODULE:ATTR, not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--tools {spec}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ValueError(f"--tools {spec}: {module_name} has no attribute {attr!r}") from None
    items: Iterable[Any]
    if isinstance(value, Tool) or (callable(value) and not isinstance(value, type)):
        items = [value]
    elif isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError(
            f"--tools {spec}: expected a list of tools, a function or an eager_rt.tool(...), "
            f"not {type(value).__name__}"
        )
    found: list[Tool | Callable[..., Any]] = []
    for item in items:
        if not (isinstance(item, Tool) or callable(item)):
            raise ValueError(f"--tools {spec}: {item!r} is not a function or an eager_rt.tool")
        found.append(item)
    return found


def tools_from_args(args: argparse.Namespace) -> list[Tool | Callable[..., Any]] | None:
    """Every ``--tools`` option's tools, checked together (names must not clash)."""
    if not args.tools:
        if args.speculate or args.hold_side_effects:
            raise ValueError("--speculate and --hold-side-effects need --tools")
        return None
    found = [t for spec in args.tools for t in load_tools(spec)]
    try:
        as_tools(found)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--tools: {exc}") from exc
    return found


async def measure_setup(session: Session, repeats: int = 7) -> float:
    """T_setup: the median round trip of an execution that does nothing."""
    times = []
    for _ in range(repeats):
        result = await session.execute("pass", timeout=30)
        times.append(result.ended - result.started)
    return statistics.median(times)


def _intro(args: argparse.Namespace, mode: Mode) -> str:
    how = (
        "each statement runs as soon as it is complete"
        if mode == "eager"
        else "the whole program is generated first, then run"
    )
    return f"{mode} run on {args.backend} at {args.tps:g} tokens/s: {how}"


async def replay_run(
    args: argparse.Namespace,
    text: str,
    session: Session,
    mode: Mode,
    watcher: Watcher,
    tools: list[Tool | Callable[..., Any]] | None,
) -> RunResult:
    """Stream ``text`` as the replay options say, run it on ``session``, shown to ``watcher``."""
    return await arun_stream(
        Watched(
            replay(text, args.tps, args.ttft, tokenizer=args.tokenizer),
            watcher.code,
            watcher.generation_ended,
        ),
        session,
        mode=mode,
        batching=not args.no_batching,
        gating=not args.no_gating,
        on_error=args.on_error,
        exec_timeout=args.exec_timeout,
        on_event=watcher,
        tools=tools,
        speculate=bool(args.speculate and mode == "eager"),
        hold_side_effects=args.hold_side_effects,
    )


async def _run_modes(
    args: argparse.Namespace,
    text: str,
    modes: list[Mode],
    watcher: Callable[[Mode], LivePrinter | LiveView],
    tools: list[Tool | Callable[..., Any]] | None = None,
) -> list[tuple[RunResult, float]]:
    runs: list[tuple[RunResult, float]] = []
    backend = backend_from_args(args)
    async with backend:
        for mode in modes:
            session = backend.session(cwd=str(args.script.resolve().parent))
            view = watcher(mode)
            try:
                await session.start(timeout=300)
                t_setup = await measure_setup(session)
                with view if isinstance(view, LiveView) else contextlib.nullcontext():
                    result = await replay_run(args, text, session, mode, view, tools)
            finally:
                await session.close()
            runs.append((result, t_setup))
    return runs


def _run_record(run: RunResult, t_setup: float, args: argparse.Namespace) -> dict[str, Any]:
    record: dict[str, Any] = {**run.summary(), "tps": args.tps, "t_setup_s": t_setup}
    record["stdout"], dropped = cap_output(run.stdout, args.json_output_limit)
    if dropped:
        record["stdout_dropped_chars"] = dropped
    if run.error is not None:
        record["error"] = {
            "kind": run.error.kind,
            "ename": run.error.ename,
            "evalue": clean_evalue(run.error.evalue),
            "lineno": run.error.lineno,
            "statement": run.error.statement,
            "message": error_message(run, args.exec_timeout),
        }
    if run.tool_calls:
        data = run.to_dict()
        record["tool_calls"], record["ledger"] = data["tool_calls"], data["ledger"]
    if args.json_images:
        record["images"] = image_bundles(run)
    if run.mode == "eager" and any(r.ran for r in run.chunks):
        record["model"] = LatencyModel.from_run(run, t_setup).report(run.e2el_s)
    return record


def _check(args: argparse.Namespace) -> str:
    """The script's text, once every option that can be checked before a run is."""
    text = read_script(args.script)
    if args.timeline is not None:
        if args.timeline.suffix.lower() not in FORMATS:
            raise UsageError(
                f"--timeline {args.timeline}: the file must end in .png, .svg or .html"
            )
        writable_file(args.timeline, "--timeline")
    check_output_arguments(args)
    return text


def handle(args: argparse.Namespace) -> int:
    try:
        text = _check(args)
        tools = tools_from_args(args)
    except (UsageError, ValueError) as exc:
        print(f"eager run: {exc}", file=sys.stderr)
        return 2
    modes: list[Mode] = ["serial", "eager"] if args.mode == "both" else [args.mode]
    live = wants_live_view(args)
    console = Console(highlight=False) if live else None
    script_out = sys.stderr if args.json else sys.stdout

    def watcher(mode: Mode) -> LivePrinter | LiveView:
        figures = None
        if args.save_figures is not None:
            figures = FigureSaver(args.save_figures, f"{mode}-" if len(modes) > 1 else "")
        if console is not None:
            console.rule(_intro(args, mode), style="dim")
            return LiveView(
                console,
                label=f"{mode} on {args.backend}",
                figures=figures,
                describe_error=lambda run: error_message(run, args.exec_timeout),
            )
        safe_write(sys.stderr, f"--- {_intro(args, mode)} ---\n")
        return LivePrinter(script_out, sys.stderr, figures=figures)

    try:
        runs = asyncio.run(_run_modes(args, text, modes, watcher, tools))
    except (BackendNotFound, BackendError) as exc:
        print(f"eager run: {exc}", file=sys.stderr)
        return 2
    timeline_error = _draw(args, runs) if args.timeline else None
    if args.json:
        payload: dict[str, Any] = {
            "runs": [_run_record(run, t_setup, args) for run, t_setup in runs]
        }
        if len(runs) == 2:
            payload.update(savings(runs[0][0], runs[1][0]))
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
    elif console is not None:
        print_rich_summary(runs, console, args.exec_timeout)
    else:
        print_plain_summary(runs, sys.stdout, args.exec_timeout)
    if args.timeline and timeline_error is None and not args.json:
        print(f"timeline written to {args.timeline}")
    if timeline_error is not None:
        print(f"eager run: {timeline_error}", file=sys.stderr)
        return 2
    return 0 if all(run.ok for run, _ in runs) else 1


def _draw(args: argparse.Namespace, runs: list[tuple[RunResult, float]]) -> str | None:
    """Draw the timeline; a message when it could not be written (the runs still count)."""
    from eager_rt.timeline import draw_timeline

    try:
        draw_timeline(
            [r for r, _ in runs], args.timeline, title=f"{args.script.name} @ {args.tps:g} tok/s"
        )
    except (OSError, RuntimeError) as exc:
        return f"--timeline {args.timeline}: {exc}"
    return None
