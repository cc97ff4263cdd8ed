"""``eager run SCRIPT``: replay a script as a model would stream it, and run it eagerly.

The script is cut into tokens (:mod:`eager_rt.sources.replay`) and streamed at
``--tps``; its statements run on the chosen backend while later tokens are
still arriving. ``--mode both`` runs the serial baseline and the eager run on
fresh sessions, one after the other, and reports the savings. The session runs
in the script's own directory so relative data paths work.

Host tools: ``--tools MODULE:ATTR`` imports MODULE (the current directory is
searched first) and takes ATTR: a list of tools, or one function or
``eager_rt.tool(...)`` declaration. The script calls them by name, as
generated code would; they run in this process. Tools that require approval
are denied (there is no one to ask). ``--mode both`` runs the script twice, so
its tools are called twice.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from eager_rt.cli.common import add_backend_arguments, backend_from_args
from eager_rt.cli.live import LivePrinter
from eager_rt.executor import BackendError, Session
from eager_rt.latency import LatencyModel
from eager_rt.registry import BackendNotFound
from eager_rt.result import RunResult
from eager_rt.runtime import Mode, arun_stream
from eager_rt.sources.replay import replay
from eager_rt.tools import Tool, as_tools

__all__ = ["add_parser", "load_tools", "measure_setup", "savings"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="replay a script as a token stream and run it while it streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("script", type=Path, help="the Python script to replay")
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second (50)")
    parser.add_argument("--ttft", type=float, default=0.0, help="time to first token, seconds")
    parser.add_argument("--mode", choices=["eager", "serial", "both"], default="eager")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--timeline", type=Path, metavar="PNG", help="draw the run's timeline")
    parser.add_argument("--tokenizer", choices=["auto", "cl100k", "approx"], default="auto")
    parser.add_argument("--no-batching", action="store_true", help="one execution per chunk")
    parser.add_argument("--no-gating", action="store_true", help="run definitions at once")
    parser.add_argument(
        "--on-error",
        choices=["interrupt", "continue"],
        default="interrupt",
        help="stop generation at the first error (default), or keep generating",
    )
    tools = parser.add_argument_group("host tools")
    tools.add_argument(
        "--tools",
        dest="tools",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="host tools the script may call: ATTR of MODULE is a list of tools, or one "
        "function or eager_rt.tool(...); repeatable (e.g. --tools mytools:TOOLS)",
    )
    tools.add_argument(
        "--speculate",
        action="store_true",
        help="start calls of read-only tools while the script is still streaming",
    )
    tools.add_argument(
        "--hold-side-effects",
        action="store_true",
        help="run statements that mention a tool that is not read-only only once the "
        "script has streamed to its end",
    )
    add_backend_arguments(parser)
    parser.set_defaults(handler=handle)


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


def _tools_of(args: argparse.Namespace) -> list[Tool | Callable[..., Any]] | None:
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


def savings(serial: RunResult, eager: RunResult) -> dict[str, float | None]:
    """Fractions of serial NEL and E2EL that the eager run saved."""
    nel = 1.0 - eager.nel_s / serial.nel_s if serial.nel_s > 0 else None
    e2el = 1.0 - eager.e2el_s / serial.e2el_s if serial.e2el_s > 0 else None
    return {"nel_saving": nel, "e2el_saving": e2el}


async def _run_modes(
    args: argparse.Namespace,
    text: str,
    modes: list[Mode],
    printer: LivePrinter,
    tools: list[Tool | Callable[..., Any]] | None = None,
) -> list[tuple[RunResult, float]]:
    runs: list[tuple[RunResult, float]] = []
    backend = backend_from_args(args)
    async with backend:
        for mode in modes:
            session = backend.session(cwd=str(args.script.resolve().parent))
            printer.err.write(
                f"--- {mode} run on {args.backend} at {args.tps:g} tokens/s"
                + (
                    ": output appears while the code is generated"
                    if mode == "eager"
                    else ": the whole program is generated first, then run"
                )
                + " ---\n"
            )
            printer.err.flush()
            try:
                await session.start(timeout=300)
                t_setup = await measure_setup(session)
                result = await arun_stream(
                    replay(text, args.tps, args.ttft, tokenizer=args.tokenizer),
                    session,
                    mode=mode,
                    batching=not args.no_batching,
                    gating=not args.no_gating,
                    on_error=args.on_error,
                    exec_timeout=args.exec_timeout,
                    on_event=printer,
                    tools=tools,
                    speculate=bool(args.speculate and mode == "eager"),
                    hold_side_effects=args.hold_side_effects,
                )
            finally:
                await session.close()
            runs.append((result, t_setup))
    return runs


def _run_record(run: RunResult, t_setup: float, tps: float) -> dict[str, Any]:
    record: dict[str, Any] = {**run.summary(), "tps": tps, "t_setup_s": t_setup}
    if run.error is not None:
        record["error"] = {
            "kind": run.error.kind,
            "ename": run.error.ename,
            "evalue": run.error.evalue,
            "lineno": run.error.lineno,
            "statement": run.error.statement,
        }
    if run.tool_calls:
        data = run.to_dict()
        record["tool_calls"], record["ledger"] = data["tool_calls"], data["ledger"]
    if run.mode == "eager" and any(r.ran for r in run.chunks):
        record["model"] = LatencyModel.from_run(run, t_setup).report(run.e2el_s)
    return record


def _print_summary(runs: list[tuple[RunResult, float]], out: TextIO) -> None:
    out.write("\n")
    out.write(
        f"{'mode':<7} {'status':<12} {'gen_s':>7} {'exec_s':>7} {'nel_s':>7} "
        f"{'e2el_s':>7} {'chunks':>6} {'batches':>7}\n"
    )
    for run, _ in runs:
        s = run.summary()
        out.write(
            f"{run.mode:<7} {run.status:<12} {run.gen_s:7.3f} {run.exec_s:7.3f} "
            f"{run.nel_s:7.3f} {run.e2el_s:7.3f} {s['chunks']:>6} {s['batches']:>7}\n"
        )
        if run.error is not None:
            out.write(f"        error: {run.error.describe()}")
            if run.stream_closed_early:
                out.write(" (generation stopped there)")
            out.write("\n")
    for run, t_setup in runs:
        if run.mode == "eager" and any(r.ran for r in run.chunks):
            model = LatencyModel.from_run(run, t_setup)
            lower = model.e2el_lower_bound()
            out.write(
                f"model:  lower bound {lower:.3f}s, measured E2EL {run.e2el_s / lower:.3f}x "
                f"of it; regime {model.regime()}; T_setup {t_setup * 1000:.2f} ms\n"
            )
            if model.tools:
                hidden = model.tool_hidden_s() / model.tool_s() if model.tool_s() > 0 else 0.0
                out.write(
                    f"tools:  {len(model.tools)} calls, {model.tool_s():.3f}s, {hidden:.0%} "
                    f"hidden behind generation; optimum {model.e2el_optimum():.3f}s "
                    f"(measured E2EL {run.e2el_s / model.e2el_optimum():.3f}x of it), "
                    f"{model.hideable_s():.3f}s more could be hidden\n"
                )
    for run, _ in runs:
        if run.ledger:
            calls = ", ".join(f"{c.tool}#{c.id}" for c in run.ledger)
            out.write(f"ledger ({run.mode}): side effects that ran: {calls}\n")
    if len(runs) == 2:
        saved = savings(runs[0][0], runs[1][0])
        parts = [
            f"{name.replace('_saving', '').upper()} saved {value:.1%}"
            for name, value in saved.items()
            if value is not None
        ]
        out.write("eager vs serial: " + ", ".join(parts) + "\n")
    out.flush()


def handle(args: argparse.Namespace) -> int:
    script: Path = args.script
    if not script.is_file():
        print(f"eager run: no such script: {script}", file=sys.stderr)
        return 2
    if args.tps <= 0:
        print("eager run: --tps must be positive", file=sys.stderr)
        return 2
    text = script.read_text(encoding="utf-8")
    try:
        tools = _tools_of(args)
    except ValueError as exc:
        print(f"eager run: {exc}", file=sys.stderr)
        return 2
    modes: list[Mode] = ["serial", "eager"] if args.mode == "both" else [args.mode]
    script_out = sys.stderr if args.json else sys.stdout
    printer = LivePrinter(script_out, sys.stderr)
    try:
        runs = asyncio.run(_run_modes(args, text, modes, printer, tools))
    except (BackendNotFound, BackendError) as exc:
        print(f"eager run: {exc}", file=sys.stderr)
        return 2
    if args.timeline:
        from eager_rt.timeline import draw_timeline

        draw_timeline(
            [r for r, _ in runs], args.timeline, title=f"{script.name} @ {args.tps} tok/s"
        )
    if args.json:
        payload: dict[str, Any] = {
            "runs": [_run_record(run, t_setup, args.tps) for run, t_setup in runs]
        }
        if len(runs) == 2:
            payload.update(savings(runs[0][0], runs[1][0]))
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_summary(runs, sys.stdout)
        if args.timeline:
            print(f"timeline written to {args.timeline}")
    return 0 if all(run.ok for run, _ in runs) else 1
