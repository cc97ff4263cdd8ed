"""The streaming runtime: run each statement while the model is still writing the next.

Two tasks share one run. The *producer* pulls text pieces from the token
source and feeds the :class:`~eager_rt.chunker.Chunker`; every complete
statement it returns is queued. The *consumer* owns the session: whenever it is
free it takes what is pending and executes it.

* **Dynamic batching** (``batching=True``): a free consumer merges *all*
  pending chunks into one execution, paying the per-call overhead once.
* **Gating** (``gating=True``): chunks that only define functions or classes
  cost almost nothing to run, so they wait and ride along with the next chunk
  that does real work.

  Both are decided by a :class:`~eager_rt.policy.BatchPolicy` the consumer asks
  whenever it is free; ``batching``/``gating`` build the
  :class:`~eager_rt.policy.DefaultPolicy`, ``policy=`` passes another.
* **Early error interruption** (``on_error="interrupt"``): the moment a
  statement fails, the producer stops pulling and the token source is closed
  (an HTTP stream is cancelled, generation and billing stop), and the result
  says what ran, which statement failed and what never ran.
  ``on_error="continue"`` keeps generating to the end but runs nothing after
  the failure: the serial program's error semantics, with the prefix overlapped.
* ``mode="serial"`` is the honest baseline: generate everything, then execute
  the whole program once on the same session.

Each batch is sent with its first line padded to its line in the stream, so
tracebacks and ``ErrorInfo.lineno`` speak in stream lines on every backend, and
a failure inside a batch is pinned to the exact statement
(:mod:`eager_rt.failure` says where a run was cut).

Every timestamp is read from :func:`eager_rt.clock.now` (the running loop's
clock) and reported in seconds from the stream's start.

The runtime never knows which backend it drives: it only calls the
:class:`~eager_rt.executor.Session` interface. Nothing it starts outlives the
call: on return, exception or cancellation both tasks are finished, a sync
source's thread is joined and the source is closed.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from eager_rt import clock
from eager_rt.blocking_source import BlockingIterator
from eager_rt.chunk import Chunk
from eager_rt.chunker import Chunker
from eager_rt.events import (
    ChunkDetected,
    Event,
    EventCallback,
    ExecutionFinished,
    ExecutionStarted,
    Finished,
    Interrupted,
    OutputEvent,
    ToolCallFinished,
    ToolCallStarted,
)
from eager_rt.executor import BackendError, Output, Session
from eager_rt.failure import Failure, fail_execution, fail_source, fail_syntax, locate_failure
from eager_rt.policy import (
    BatchPolicy,
    DefaultPolicy,
    HoldSideEffects,
    checked_take,
    runnable_at_end,
)
from eager_rt.result import BatchRecord, ChunkRecord, RunError, RunResult, RunStatus
from eager_rt.sources.boundary import is_boundary
from eager_rt.sync import Portal, SyncSession

if TYPE_CHECKING:  # tools and speculation load only for runs that use them
    from eager_rt.speculation import Speculator
    from eager_rt.tools import Approval, Tool, ToolHost

__all__ = ["Mode", "OnError", "TokenSource", "arun_stream", "astream_events", "run_stream"]

Mode = Literal["eager", "serial"]
OnError = Literal["interrupt", "continue"]
TokenSource = Iterable[str] | AsyncIterable[str]

_KIND_TO_RUN_STATUS: dict[str, RunStatus] = {
    "runtime": "error",
    "syntax": "syntax_error",
    "timeout": "timeout",
    "died": "died",
    "interrupted": "interrupted",
    "source": "source_error",
}


class _Pieces:
    """Pulls pieces from any token source; closing it closes the source.

    An async iterable is iterated in the loop. A plain iterable may block
    (``time.sleep``, a blocking HTTP read), so it is pulled on a daemon thread
    of its own (:class:`~eager_rt.blocking_source.BlockingIterator`).
    """

    #: how long a blocking source may take to return from next() and close
    close_timeout = 10.0

    def __init__(self, tokens: TokenSource) -> None:
        self._source = tokens
        self._aiter: AsyncIterator[str] | None = None
        self._blocking: BlockingIterator | None = None
        if isinstance(tokens, AsyncIterable):
            self._aiter = aiter(tokens)
        elif isinstance(tokens, Iterable):
            self._blocking = BlockingIterator(iter(tokens))
        else:
            raise TypeError(f"tokens must be an iterable or async iterable of str, not {tokens!r}")

    async def next(self) -> str | None:
        """The next piece, or None at the end of the stream."""
        if self._aiter is not None:
            try:
                return await anext(self._aiter)
            except StopAsyncIteration:
                return None
        assert self._blocking is not None
        return await self._blocking.next()

    async def aclose(self) -> None:
        if self._aiter is not None:
            closer = getattr(self._aiter, "aclose", None)
            if closer is not None:
                await closer()
            return
        assert self._blocking is not None
        await self._blocking.aclose(self.close_timeout)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        getter = getattr(self._source, "info", None)
        if callable(getter):
            reported = getter()
            if isinstance(reported, dict):
                info.update(reported)
        if self._blocking is not None and self._blocking.abandoned is not None:
            info["close_failed"] = self._blocking.abandoned
        return info


class _StreamRun:
    def __init__(
        self,
        tokens: TokenSource,
        session: Session,
        *,
        mode: Mode,
        policy: BatchPolicy,
        on_error: OnError,
        exec_timeout: float | None,
        on_event: EventCallback | None,
        chunker: Chunker | None,
        tools: Iterable[Tool | Callable[..., Any]] | None = None,
        approve: Approval | None = None,
        speculate: bool | Iterable[str] = False,
        max_speculative: int = 8,
        hold_side_effects: bool = False,
    ) -> None:
        if mode not in ("eager", "serial"):
            raise ValueError(f"mode must be 'eager' or 'serial', not {mode!r}")
        if on_error not in ("interrupt", "continue"):
            raise ValueError(f"on_error must be 'interrupt' or 'continue', not {on_error!r}")
        self.session = session
        self.mode = mode
        self.policy = policy
        self.on_error = on_error
        self.exec_timeout = exec_timeout
        self.on_event = on_event
        # every backend runs top-level `await` (the worker on its own loop, kernels natively)
        self.chunker = chunker or Chunker(top_level_await=True)
        started_at = getattr(tokens, "started_at", None)
        self.t0 = started_at if isinstance(started_at, float) else clock.now()
        self.pieces = _Pieces(tokens)
        self.tool_host: ToolHost | None = None
        if tools is not None:
            from eager_rt.tools import ToolHost, as_tools

            self.tool_host = ToolHost(
                as_tools(tools),
                approve=approve,
                t0=self.t0,
                on_call=lambda call: self.emit(ToolCallStarted(call, self.now())),
                on_return=lambda call: self.emit(ToolCallFinished(call, self.now())),
            )
        self.speculator: Speculator | None = None
        if speculate is not False:
            if self.tool_host is None:
                raise ValueError("speculate= needs tools=")
            from eager_rt.speculation import Speculator

            self.speculator = Speculator(self.tool_host, speculate, max_in_flight=max_speculative)
        if hold_side_effects:
            if self.tool_host is None:
                raise ValueError("hold_side_effects= needs tools=")
            acting = [t.name for t in self.tool_host.tools.values() if not t.read_only]
            self.policy = HoldSideEffects(policy, acting)
        self.held_back: list[ChunkRecord] = []  # held statements whose code unit never completed

        self.text_parts: list[str] = []
        self.piece_ends: list[int] = []  # stream offset just past each piece
        self.piece_times: list[float] = []  # when each piece arrived (s from t0)
        self.records: list[ChunkRecord] = []
        self.pending: list[ChunkRecord] = []
        self.batches: list[BatchRecord] = []
        self.outputs: list[Output] = []
        self.error: RunError | None = None
        self.syntax_error: ChunkRecord | None = None  # first invalid chunk, run stops before it
        self.generation_over = False
        self.stream_closed_early = False
        self.gen_end = 0.0
        self.halted = False  # nothing more will be executed
        self.stop_requested = False  # generation is being cut off
        self.error_after = 0  # stream offset where the never-run code starts
        self.source_error: Exception | None = None  # the token source failed mid-stream
        self.changed = asyncio.Event()
        self.producer: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- helpers
    def now(self) -> float:
        """Seconds since the stream's start."""
        return clock.now() - self.t0

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    @property
    def code(self) -> str:
        return "".join(self.text_parts)

    # ---------------------------------------------------------------- producer
    async def produce(self) -> None:
        offset = 0
        try:
            while True:
                try:
                    piece = await self.pieces.next()
                except Exception as exc:  # a dropped connection, an API error event ...
                    # the open statement was cut mid-way: never run it (no chunker.close())
                    self.source_error = exc
                    self.gen_end = self.now()
                    return
                if piece is None:
                    break
                if not isinstance(piece, str):
                    raise TypeError(f"token source yielded {type(piece).__name__}, not str")
                t = self.now()
                if is_boundary(piece):
                    # the source knows the code unit ended: its last statement is complete
                    self.accept(self.chunker.flush())
                    self.unit_complete()
                    if self.stop_requested:
                        self.gen_end = t
                        return
                    continue
                if not piece:
                    continue
                offset += len(piece)
                self.text_parts.append(piece)
                self.piece_ends.append(offset)
                self.piece_times.append(t)
                # before the chunker, so calls start sooner; a site waiting for session
                # values wakes the consumer, which reads them when it is idle
                if self.speculator is not None and not self.halted and self.speculator.feed(piece):
                    self.changed.set()
                self.accept(self.chunker.feed(piece))
                if self.stop_requested:
                    self.gen_end = t
                    return
            self.accept(self.chunker.close())
            self.unit_complete()
            self.gen_end = self.piece_times[-1] if self.piece_times else self.now()
        except asyncio.CancelledError:
            self.gen_end = self.now()
            raise
        finally:
            self.generation_over = True
            self.changed.set()

    def accept(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            t = self.now()
            last_char = max(chunk.body_end, chunk.start + 1) - 1
            piece = bisect.bisect_right(self.piece_ends, last_char)
            times = self.piece_times
            generated = times[min(piece, len(times) - 1)] if times else t
            record = ChunkRecord(chunk=chunk, t_generated=generated, t_detected=t)
            self.records.append(record)
            self.emit(ChunkDetected(chunk, t))
            if chunk.kind == "statement":
                if self.syntax_error is None:
                    self.pending.append(record)
            elif chunk.kind == "syntax_error" and self.syntax_error is None:
                self.syntax_error = record
                if self.mode == "eager" and self.on_error == "interrupt":
                    self.stop_generation(f"syntax error at line {chunk.lineno}")
            self.changed.set()

    def unit_complete(self) -> None:
        """The code unit ended normally: no later text can belong to its statements."""
        for record in reversed(self.records):
            if record.unit_complete:
                break
            record.unit_complete = True
        self.changed.set()

    def stop_generation(self, reason: str) -> None:
        """Stop pulling tokens now; the source is closed when the producer unwinds."""
        if self.generation_over or self.producer is None or self.producer.done():
            return
        if self.stop_requested:
            return
        self.stop_requested = True
        self.stream_closed_early = True
        self.emit(Interrupted(reason, self.now()))
        if asyncio.current_task() is not self.producer:
            self.producer.cancel()  # it may be waiting on the network: don't wait for a token

    # ---------------------------------------------------------------- consumer
    async def consume(self) -> None:
        if not self.session.alive:
            await self.session.start()  # overlaps generation: the producer is already pulling
        if self.tool_host is not None:
            await self.define_tools(self.tool_host)
        if self.mode == "serial":
            await self.consume_serial()
            return
        while not self.halted:
            batch = self.take_batch()
            if batch is None:
                if self.generation_over and not self.pending:
                    break
                if self.speculator is not None and await self.speculator.peek(self.session):
                    continue  # idle: read the session values waiting call sites need
                self.changed.clear()
                await self.changed.wait()
                continue
            await self.execute(batch)
        if self.syntax_error is not None and self.error is None:
            self.fail(fail_syntax(self.syntax_error, self.records))
        if self.source_error is not None and self.error is None:
            self.fail(fail_source(self.source_error, self.records))

    async def consume_serial(self) -> None:
        while not self.generation_over:
            self.changed.clear()
            await self.changed.wait()
        runnable = [r for r in self.records if r.chunk.kind != "trivia"]
        if not self.code.strip():
            return
        await self.execute(runnable, whole_program=True)

    async def define_tools(self, host: ToolHost) -> None:
        """Put the tools' stubs in the session, before any of the code runs."""
        from eager_rt.tools import stub_source

        result = await self.session.execute(stub_source(host.tools), timeout=60.0)
        if not result.ok:
            why = result.error.evalue if result.error else result.detail
            raise BackendError(f"the tools could not be defined in the session: {why}")

    def take_batch(self) -> list[ChunkRecord] | None:
        """What the policy says to run now, or None to wait."""
        pending = self.pending
        if not pending:
            return None
        if self.generation_over:
            keep = runnable_at_end(self.policy, tuple(pending))
            if keep < len(pending):
                self.held_back.extend(pending[keep:])  # never run: their unit never completed
                del pending[keep:]
                if not pending:
                    return None
        n = checked_take(self.policy, tuple(pending), self.generation_over)
        if n == 0:
            return None
        batch = pending[:n]
        del pending[:n]
        return batch

    async def execute(self, batch: list[ChunkRecord], whole_program: bool = False) -> None:
        index = len(self.batches)
        if whole_program:
            code, sent = self.code, self.code
        else:
            code = "".join(r.chunk.code for r in batch)
            # pad to the stream line, so tracebacks and ErrorInfo.lineno are stream lines
            sent = "\n" * (batch[0].chunk.lineno - 1) + code
        if sent.startswith("\ufeff"):
            sent = sent[1:]  # a stream's byte-order mark is not code (the tokenizer skips it too)
        if self.speculator is not None:  # this code's calls are about to be made for real
            self.speculator.executing(len(self.code) if whole_program else batch[-1].chunk.end)
        t_start = self.now()
        self.emit(ExecutionStarted(index, tuple(r.chunk.index for r in batch), code, t_start))

        def forward(output: Output) -> None:
            self.emit(OutputEvent(index, output, self.now()))

        result = await self.session.execute(
            sent, timeout=self.exec_timeout, on_output=forward, tools=self.tool_host
        )
        t_end = self.now()
        rel_start = result.started - self.t0 if result.started else t_start
        rel_end = result.ended - self.t0 if result.ended else t_end
        self.outputs.extend(result.outputs)
        self.batches.append(
            BatchRecord(index, [r.chunk.index for r in batch], code, result, rel_start, rel_end)
        )
        ran = batch
        if not result.ok:
            failing = locate_failure(batch, result)
            ran = batch if failing is None else batch[: batch.index(failing) + 1]
        for record in ran:
            record.t_exec_start, record.t_exec_end, record.batch = rel_start, rel_end, index
        self.emit(ExecutionFinished(index, result, self.now()))
        if not result.ok:
            self.fail(
                fail_execution(
                    batch, result, records=self.records, code=self.code, whole_program=whole_program
                )
            )

    def fail(self, failure: Failure) -> None:
        """The run stops here: nothing more runs; generation too, when interrupting."""
        self.error, self.error_after = failure
        self.halt(self.error.describe())

    def halt(self, reason: str) -> None:
        self.halted = True
        if self.mode == "eager" and self.on_error == "interrupt":
            self.stop_generation(reason)

    # ------------------------------------------------------------------- run
    async def run(self) -> RunResult:
        try:
            async with asyncio.TaskGroup() as group:
                self.producer = group.create_task(self.produce(), name="eager_rt-producer")
                group.create_task(self.consume(), name="eager_rt-consumer")
        except BaseExceptionGroup as group_error:
            raise _unwrap(group_error) from None
        finally:
            await self.pieces.aclose()
            if self.tool_host is not None:
                # unclaimed speculation cancelled (wasted); the run's tool threads end
                await self.tool_host.aclose()
        return self.result()

    def result(self) -> RunResult:
        gen_s = self.gen_end
        ends = [b.t_end for b in self.batches]
        last_end = max(ends) if ends else gen_s
        exec_s = sum(b.t_end - b.t_start for b in self.batches)
        nel_s = sum(max(0.0, b.t_end - max(b.t_start, gen_s)) for b in self.batches)
        status: RunStatus = "ok" if self.error is None else _KIND_TO_RUN_STATUS[self.error.kind]
        if self.error is not None:
            after = self.error_after
            if self.held_back:
                after = min(after, self.held_back[0].chunk.start)
            self.error.not_run = self.code[after:]
        result = RunResult(
            code=self.code,
            status=status,
            mode=self.mode,
            backend=self.session.backend_name,
            chunks=self.records,
            batches=self.batches,
            outputs=self.outputs,
            error=self.error,
            stream_closed_early=self.stream_closed_early,
            pieces=len(self.piece_times),
            ttft_s=self.piece_times[0] if self.piece_times else 0.0,
            gen_s=gen_s,
            exec_s=exec_s,
            nel_s=nel_s,
            e2el_s=max(gen_s, last_end),
            source_info=self.pieces.info(),
            tool_calls=list(self.tool_host.calls) if self.tool_host is not None else [],
            piece_ends=list(self.piece_ends),
            piece_times=list(self.piece_times),
        )
        self.emit(Finished(result, self.now()))
        return result


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Report a task's own exception, not the group that carried it."""
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]  # type: ignore[assignment]
    return group


async def arun_stream(
    tokens: TokenSource,
    session: Session,
    *,
    mode: Mode = "eager",
    batching: bool | None = None,
    gating: bool | None = None,
    policy: BatchPolicy | None = None,
    on_error: OnError = "interrupt",
    exec_timeout: float | None = None,
    on_event: EventCallback | None = None,
    chunker: Chunker | None = None,
    tools: Iterable[Tool | Callable[..., Any]] | None = None,
    approve: Approval | None = None,
    speculate: bool | Iterable[str] = False,
    max_speculative: int = 8,
    hold_side_effects: bool = False,
) -> RunResult:
    """Run the code in ``tokens`` on ``session`` while it is being generated.

    ``session`` is started if it is not alive yet; starting it then overlaps
    generation. ``exec_timeout`` bounds each execution (the session reports a
    timeout as a result; the run then stops like on any error); ``None`` leaves
    the session's own default, 300 s on every backend.

    ``batching`` and ``gating`` (both on unless set to False) configure the
    :class:`~eager_rt.policy.DefaultPolicy`; ``policy`` replaces it with any
    :class:`~eager_rt.policy.BatchPolicy` (then leave the two flags unset).

    ``tools`` are host functions the code may call (plain callables or
    :func:`eager_rt.tool` declarations; see :mod:`eager_rt.tools`); they are
    defined in the session before the code runs, and every call is in
    ``RunResult.tool_calls``. ``approve`` decides the calls of tools declared
    ``requires_approval=True`` (sync or async; False denies).

    ``speculate`` (True, or a list of tool names) starts calls of read-only
    tools while the model is still writing them: literal arguments, loop
    variables over known values, and names bound in the session to plain data
    (:mod:`eager_rt.speculation`); at most ``max_speculative`` at once. The code
    gets the result when it makes the same call; calls it never makes are
    cancelled at the end and reported (``ToolCall.wasted``).

    ``hold_side_effects`` holds every statement that mentions a tool that is
    not read-only until its code unit is complete (the stream's end, or a
    boundary such as a closed code fence); if the unit never completes, it
    never runs (:class:`~eager_rt.policy.HoldSideEffects`, ``docs/tools.md``).
    """
    if policy is None:
        policy = DefaultPolicy(
            batching=True if batching is None else batching,
            gating=True if gating is None else gating,
        )
    elif batching is not None or gating is not None:
        raise ValueError("pass either policy= or batching=/gating=, not both")
    run = _StreamRun(
        tokens,
        session,
        mode=mode,
        policy=policy,
        on_error=on_error,
        exec_timeout=exec_timeout,
        on_event=on_event,
        chunker=chunker,
        tools=tools,
        approve=approve,
        speculate=speculate,
        max_speculative=max_speculative,
        hold_side_effects=hold_side_effects,
    )
    return await run.run()


async def astream_events(
    tokens: TokenSource,
    session: Session,
    **options: Any,
) -> AsyncIterator[Event]:
    """Yield the run's events as they happen; the last one is :class:`Finished`.

    Leaving the loop early cancels the run and waits until it has cleaned up.
    """
    queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
    task = asyncio.create_task(arun_stream(tokens, session, on_event=queue.put_nowait, **options))
    task.add_done_callback(
        lambda t: queue.put_nowait(t.exception() or _DONE) if not t.cancelled() else None
    )
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _Done(Exception):
    """Marks the end of the event queue."""


_DONE = _Done()


def run_stream(
    tokens: TokenSource,
    session: SyncSession | None = None,
    *,
    backend: str = "local",
    timeout: float | None = None,
    **options: Any,
) -> RunResult:
    """Blocking twin of :func:`arun_stream`.

    Pass a :class:`~eager_rt.sync.SyncSession` to keep its state across runs;
    without one, a fresh session of ``backend`` is opened and closed around the
    run. ``timeout`` bounds the whole run (generation included); past it the run
    is cancelled, cleaned up, and :class:`TimeoutError` is raised.
    """
    try:
        if session is not None:
            return session.portal.call(arun_stream(tokens, session.session, **options), timeout)
        from eager_rt.registry import open_backend

        with Portal() as portal:
            opened = open_backend(backend)
            own = SyncSession(opened.session(), portal)
            try:
                return portal.call(arun_stream(tokens, own.session, **options), timeout)
            finally:
                own.close()
                portal.call(opened.aclose(), 30.0)
    except TimeoutError as exc:
        if timeout is None:
            raise
        raise TimeoutError(
            f"run_stream did not finish within timeout={timeout} s: the run was cancelled "
            "and its session closed"
        ) from exc
