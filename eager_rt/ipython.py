"""``%load_ext eager_rt``: the ``%%eager`` cell magic, for evaluating generated code in notebooks.

``%%eager`` replays the cell as a model would stream it (``--tps``, like
``eager run``) or, with ``--provider``/``--model``, sends the cell as a prompt
to a model and runs the code it writes (like ``eager chat``), on a chosen
backend, with the live view (:mod:`eager_rt.ipython_view`) updating one HTML
output in place.

The kernel runs its own event loop, so runs go to a :class:`~eager_rt.sync.Portal`
(an event loop on a thread of its own) that lives as long as the extension;
the kernel's thread only redraws the view and waits, up to ``--timeout``.
Named sessions (``--session NAME``) live on that portal until
``%eager_close``, unloading the extension, or the interpreter's exit;
``--export`` copies JSON-able variables from the session into the notebook.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import concurrent.futures
import html
import json
import os
import shlex
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import DisplayHandle, display

from eager_rt.cli.chat import add_model_arguments
from eager_rt.cli.checks import UsageError as CliUsageError
from eager_rt.cli.checks import number
from eager_rt.cli.common import add_backend_arguments, backend_from_args
from eager_rt.cli.report import error_message
from eager_rt.cli.run import (
    add_replay_arguments,
    add_run_arguments,
    add_tool_arguments,
    replay_run,
    tools_from_args,
)
from eager_rt.executor import Backend, BackendError, Session
from eager_rt.ipython_view import HtmlView, summary_html
from eager_rt.registry import BackendNotFound
from eager_rt.result import RunResult
from eager_rt.runtime import Mode
from eager_rt.sync import Portal
from eager_rt.tools import Tool

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXPORT_LIMIT",
    "EagerMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]

#: seconds a cell may take by default, from its start to its summary
DEFAULT_TIMEOUT = 600.0
#: characters of JSON one ``--export`` may bring back, all names together
EXPORT_LIMIT = 10_000_000
#: seconds between redraws of the view while a cell runs
_REDRAW = 0.1
#: characters of HTML a second the redraws may send to the front end (each sends it whole)
_BANDWIDTH = 2_000_000
#: seconds given to cleanup (closing sessions) after a cancel
_CLEANUP = 30.0


class _Stop(Exception):
    """``--help`` was printed: nothing to run."""


class _CellError(Exception):
    """Something the person can fix, found while the cell runs (said as a UsageError)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports to IPython instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%%eager: {message}\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message)
        raise _Stop


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise argparse.ArgumentTypeError(f"{name!r} is not a Python name")
    if not names:
        raise argparse.ArgumentTypeError("name at least one variable")
    return names


def _parser() -> _Parser:
    parser = _Parser(
        prog="%%eager",
        description="Run the cell as a model would stream it (or the code a model writes "
        "for the prompt in the cell) while it streams, with a live view.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_replay_arguments(parser, "cell")
    add_model_arguments(parser, required=False)
    run = add_run_arguments(parser)
    run.add_argument(
        "--timeout",
        type=number(above=0.0, maximum=86400.0),
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"stop the cell after S seconds (default {DEFAULT_TIMEOUT:g})",
    )
    add_tool_arguments(parser, "code")
    keep = parser.add_argument_group("what is kept")
    keep.add_argument(
        "--session",
        metavar="NAME",
        help="run in the named session, opened on first use and kept for the "
        "kernel's life (close it with %%eager_close NAME)",
    )
    keep.add_argument(
        "--export",
        type=_names,
        metavar="X,Y",
        help="copy these variables (JSON-able values) from the session into "
        "the notebook after the run",
    )
    keep.add_argument(
        "--result",
        metavar="NAME",
        help="store the RunResult (a list of two with --mode both) in the notebook as NAME",
    )
    add_backend_arguments(parser)
    return parser


def _check(args: argparse.Namespace, cell: str) -> None:
    if not cell.strip():
        raise UsageError("%%eager: the cell is empty")
    if (args.provider is None) != (args.model is None):
        raise UsageError("%%eager: --provider and --model go together")
    if args.provider is not None and args.mode != "eager":
        raise UsageError("%%eager: a model's stream runs once: --mode eager only")
    if args.mode == "both" and args.session is not None:
        raise UsageError("%%eager: --mode both compares two fresh sessions; drop --session")
    if args.result is not None and not args.result.isidentifier():
        raise UsageError(f"%%eager: --result {args.result!r} is not a Python name")
    if args.max_tokens <= 0:
        raise UsageError("%%eager: --max-tokens must be positive")
    if (args.speculate or args.hold_side_effects) and not args.tools:
        option = "--speculate" if args.speculate else "--hold-side-effects"
        raise UsageError(f"%%eager: {option} needs --tools")


def _tools(args: argparse.Namespace) -> list[Tool | Callable[..., Any]] | None:
    try:
        return tools_from_args(args)
    except ValueError as exc:
        raise UsageError(f"%%eager: {exc}") from exc


@dataclass(slots=True)
class _Named:
    """A session kept across cells, with the backend that made it."""

    backend: Backend
    session: Session
    key: tuple[str, str]  #: the backend name and options it was opened with


@dataclass(slots=True)
class _Cell:
    """What one cell's run shares between the portal's thread and the kernel's."""

    label: str
    exec_timeout: float | None
    views: list[HtmlView] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)
    exported: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self, label: str) -> HtmlView:
        view = HtmlView(label, describe_error=lambda r: error_message(r, self.exec_timeout))
        with self.lock:
            self.views.append(view)
        return view

    def version(self) -> int:
        with self.lock:
            return sum(v.version for v in self.views) + len(self.views) + len(self.notes)

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)

    def stop(self, reason: str) -> None:
        """The run was cancelled: every view settles, and the reason is said once."""
        with self.lock:
            views = list(self.views)
            self.notes.append(reason)
        for view in views:
            view.stop(reason)

    def bundle(self, *, final: bool) -> dict[str, str]:
        """The view as a MIME bundle: HTML, and a few lines for front ends without HTML."""
        with self.lock:
            views, notes = list(self.views), list(self.notes)
        lines = [v.text() for v in views]
        if final:
            lines += [f"{r.mode}: {r.status}, E2EL {r.e2el_s:.3f}s" for r in self.runs]
        lines += notes
        return {"text/html": self.render(final=final), "text/plain": "\n".join(lines)}

    def render(self, *, final: bool) -> str:
        with self.lock:
            views, notes = list(self.views), list(self.notes)
        parts = [v.render() for v in views]
        if final and self.runs:
            parts.append(summary_html(self.runs, self.exec_timeout))
        for note in notes:
            parts.append(
                f"<div style='color:#c62828;font-family:monospace'>{html.escape(note)}</div>"
            )
        return "".join(parts) or "<div style='color:#888'>starting the session ...</div>"


_EXPORT_CODE = """\
def __eager_rt_export(names, limit):
    import json
    g, out, used = globals(), {{}}, 0
    for n in names:
        if n not in g:
            out[n] = {{"error": "is not defined in the session"}}
            continue
        try:
            text = json.dumps(g[n])
        except (TypeError, ValueError) as exc:
            out[n] = {{"error": f"is not JSON-able ({{type(exc).__name__}}: {{exc}})"}}
            continue
        if used + len(text) > limit:
            out[n] = {{"error": f"is {{len(text):,}} characters of JSON, over the limit"}}
            continue
        used += len(text)
        out[n] = {{"json": text}}
    print(json.dumps(out))
try:
    __eager_rt_export({names!r}, {limit!r})
finally:
    del __eager_rt_export
"""


async def _export(session: Session, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The values of ``names`` in the session (JSON round trip), and what could not be had."""
    result = await session.execute(
        _EXPORT_CODE.format(names=names, limit=EXPORT_LIMIT), timeout=60.0
    )
    if not result.ok:
        error = result.error
        why = f"{error.ename}: {error.evalue}" if error is not None else result.status
        return {}, [f"--export failed in the session: {why}"]
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}, ["--export: the session's answer was not readable (output cut?)"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in names:
        item = found.get(name, {"error": "was not reported"})
        if "json" in item:
            values[name] = json.loads(item["json"])
        else:
            problems.append(f"--export {name}: {item['error']}")
    return values, problems


@magics_class
class EagerMagics(Magics):
    """``%%eager``, ``%eager_sessions`` and ``%eager_close``; owns the portal and named sessions."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self._portal: Portal | None = None
        self._sessions: dict[str, _Named] = {}
        self._parser = _parser()
        atexit.register(self.close)

    # ---------------------------------------------------------------- magics
    @cell_magic
    def eager(self, line: str, cell: str) -> None:
        """Run the cell while it streams; ``%%eager --help`` lists the options."""
        try:
            args = self._parser.parse_args(shlex.split(line))
        except _Stop:
            return
        _check(args, cell)
        tools = _tools(args)
        label = (
            f"{args.provider} {args.model}" if args.provider else f"{args.tps:g} tok/s"
        ) + f" on {args.backend}"
        state = _Cell(label, args.exec_timeout)
        coro = self._run(args, cell, state, tools)
        self._drive(coro, state, args.timeout)
        if state.exported:
            self.shell.user_ns.update(state.exported)  # type: ignore[union-attr]
        if args.result is not None and state.runs:
            value: Any = state.runs if args.mode == "both" else state.runs[-1]
            self.shell.user_ns[args.result] = value  # type: ignore[union-attr]

    @line_magic
    def eager_sessions(self, line: str) -> list[str]:
        """The names of the sessions ``%%eager --session`` keeps open."""
        return sorted(self._sessions)

    @line_magic
    def eager_close(self, line: str) -> None:
        """Close the named sessions (``%eager_close NAME ...``), or all with ``--all``."""
        names = line.split()
        if names == ["--all"]:
            names = list(self._sessions)
        if not names:
            raise UsageError("%eager_close: name the sessions to close, or --all")
        unknown = [n for n in names if n not in self._sessions]
        if unknown:
            raise UsageError(f"%eager_close: no session named {', '.join(unknown)}")
        self._portal_call(self._close_named(names), _CLEANUP)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close every named session and the portal (unload, or the interpreter's exit)."""
        atexit.unregister(self.close)
        if self._portal is None:
            return
        try:
            self._portal_call(self._close_named(list(self._sessions)), _CLEANUP)
        except (TimeoutError, RuntimeError):
            pass  # the portal's close below cancels whatever still runs
        finally:
            self._portal.close()
            self._portal = None

    async def _close_named(self, names: list[str]) -> None:
        for name in names:
            named = self._sessions.pop(name)
            try:
                await named.session.close()
            finally:
                await named.backend.aclose()

    def _portal_call(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        if self._portal is None:
            self._portal = Portal("eager_rt-ipython")
        return self._portal.call(coro, timeout)

    # ---------------------------------------------------------------- one cell
    def _drive(self, coro: Coroutine[Any, Any, None], state: _Cell, timeout: float) -> None:
        """Run ``coro`` on the portal, redrawing the view in place until it ends or times out."""
        if self._portal is None:
            self._portal = Portal("eager_rt-ipython")
        ended = threading.Event()

        async def guarded() -> None:
            try:
                await coro
            finally:
                ended.set()

        handle: DisplayHandle | None = display(  # type: ignore[no-untyped-call]
            state.bundle(final=False), raw=True, display_id=True
        )
        future = asyncio.run_coroutine_threadsafe(guarded(), self._portal.loop)
        deadline = time.monotonic() + timeout
        shown, quiet_until = -1, 0.0
        try:
            while True:
                try:
                    future.result(_REDRAW)
                    break
                except concurrent.futures.TimeoutError:
                    pass
                if time.monotonic() >= deadline:
                    future.cancel()
                    ended.wait(_CLEANUP)
                    state.stop(f"stopped: the cell exceeded --timeout {timeout:g}s")
                    break
                version = state.version()
                if version != shown and handle is not None and time.monotonic() >= quiet_until:
                    shown = version
                    bundle = state.bundle(final=False)
                    handle.update(bundle, raw=True)  # type: ignore[no-untyped-call]
                    quiet_until = time.monotonic() + len(bundle["text/html"]) / _BANDWIDTH
        except KeyboardInterrupt:
            future.cancel()
            ended.wait(_CLEANUP)
            state.stop("stopped: interrupted")
            raise
        except (BackendNotFound, BackendError, _CellError) as exc:
            state.note(f"%%eager: {exc}")
            raise UsageError(f"%%eager: {exc}") from exc
        finally:
            if handle is not None:
                handle.update(state.bundle(final=True), raw=True)  # type: ignore[no-untyped-call]

    async def _session(self, args: argparse.Namespace) -> tuple[Session, Backend | None]:
        """The session to run in, and the backend to close after (None for a named one)."""
        key = (args.backend, repr((sorted(args.backend_options), args.image, args.url)))
        if args.session is not None:
            named = self._sessions.get(args.session)
            if named is not None:
                if named.key != key:
                    raise _CellError(
                        f"session {args.session!r} runs on {named.key[0]} with other options; "
                        f"close it first (%eager_close {args.session})"
                    )
                return named.session, None
        backend = backend_from_args(args)
        await backend.__aenter__()
        try:
            session = backend.session(cwd=os.getcwd())
            await session.start(timeout=300)
        except BaseException:
            await backend.aclose()
            raise
        if args.session is not None:
            self._sessions[args.session] = _Named(backend, session, key)
            return session, None
        return session, backend

    async def _run(
        self,
        args: argparse.Namespace,
        cell: str,
        state: _Cell,
        tools: list[Tool | Callable[..., Any]] | None,
    ) -> None:
        modes: list[Mode] = ["serial", "eager"] if args.mode == "both" else [args.mode]
        for i, mode in enumerate(modes):
            session, owned = await self._session(args)
            try:
                view = state.view(f"{mode} run, {state.label}")
                if args.provider is not None:
                    run = await self._chat(args, cell, session, view, tools)
                else:
                    run = await replay_run(args, cell, session, mode, view, tools)
                if run is not None:
                    state.runs.append(run)
                if args.export and i == len(modes) - 1:
                    values, problems = await _export(session, args.export)
                    state.exported.update(values)
                    for problem in problems:
                        state.note(problem)
            finally:
                if owned is not None:
                    try:
                        await session.close()
                    finally:
                        await owned.aclose()

    async def _chat(
        self,
        args: argparse.Namespace,
        prompt: str,
        session: Session,
        view: HtmlView,
        tools: list[Tool | Callable[..., Any]] | None,
    ) -> RunResult | None:
        """Ask the model for code with the cell as the prompt, and run it as it streams."""
        from eager_rt import clock
        from eager_rt.agent import arun_turn
        from eager_rt.cli.chat import api_key, model_source, prepare_request

        try:
            key = api_key(args)
        except CliUsageError as exc:
            raise _CellError(str(exc)) from exc
        request_args = argparse.Namespace(**vars(args), prompt=prompt, show_code=False)
        close, request = prepare_request(request_args, key)
        try:
            t0 = clock.now()
            try:
                stream = await request()
            except Exception as exc:  # auth, unknown model, unreachable: one line, no traceback
                raise _CellError(f"the request failed: {type(exc).__name__}: {exc}") from exc
            source = model_source(request_args, stream, t0, view)
            turn = await arun_turn(
                source, session, on_event=view, exec_timeout=args.exec_timeout, tools=tools
            )
        finally:
            await close()
        if turn.run is None:
            view.note(turn.text, "error")
        return turn.run


_loaded: dict[int, EagerMagics] = {}


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics on ``ipython`` (``%load_ext eager_rt``); loading twice is harmless."""
    if id(ipython) in _loaded:
        return
    magics = EagerMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Close the named sessions and the portal, and remove the magics."""
    magics = _loaded.pop(id(ipython), None)
    if magics is None:
        return
    try:
        magics.close()
    finally:
        for kind, names in magics.magics.items():
            for name in names:
                ipython.magics_manager.magics[kind].pop(name, None)
