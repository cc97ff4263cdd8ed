"""eager_rt.tools and the wire module both ends share, without a sandbox.

The codec (``backends/_tool_wire.py``) is checked by properties: every plain
value survives the trip and crosses as JSON. The generated stubs are run here,
in-process, against a :class:`~eager_rt.tools.ToolHost` on an event loop in
another thread: the same path as in a sandbox (stub, bridge, codec, host),
minus the backend. The host's paths (rebuilding, binding, validation, timeouts,
approval, records) are checked one by one on a virtual clock.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from eager_rt.backends import _tool_wire as wire
from hypothesis import given, settings
from hypothesis import strategies as st

from eager_rt.testing import VirtualClockLoop
from eager_rt.tools import Tool, ToolCall, ToolHost, as_tools, canonical, stub_source, tool

# --------------------------------------------------------------------------- the codec

MARKER_KEYS = st.sampled_from(["$bytes", "$dict", "$default", "$", "$x", "plain", ""])
keys = st.one_of(MARKER_KEYS, st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=30,
)


def as_lists(value: Any) -> Any:
    """``value`` with tuples as lists and byte-likes as bytes: what a decoded value looks like."""
    if isinstance(value, list | tuple):
        return [as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


@given(values)
def test_every_plain_value_survives_the_trip(value: Any) -> None:
    encoded = wire.encode(value)
    # what crosses is JSON, ASCII-safe, and means the same after a JSON round trip
    assert json.loads(json.dumps(encoded, ensure_ascii=True)) == encoded
    decoded = wire.decode(json.loads(json.dumps(encoded)))
    assert decoded == value
    assert type(decoded) is type(value)


@given(
    st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.lists(inner), max_leaves=10)
)
def test_tuples_come_back_as_lists(value: Any) -> None:
    assert wire.decode(wire.encode(value)) == as_lists(value)


@given(st.dictionaries(MARKER_KEYS, scalars, min_size=1, max_size=3))
def test_keys_that_look_like_markers_are_escaped(value: dict[str, Any]) -> None:
    encoded = wire.encode(value)
    if any(k.startswith("$") for k in value):
        assert list(encoded) == [wire.ESCAPED]
    assert wire.decode(encoded) == value


def test_byte_likes_cross_as_bytes() -> None:
    for data in (b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")):
        assert wire.decode(wire.encode(data)) == bytes(data)
    assert wire.encode(b"\x00") == {"$bytes": "AA=="}


def test_numpy_values_cross_through_tolist() -> None:
    assert wire.encode(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]
    assert wire.encode({"x": np.float64(1.5), "n": np.int32(3)}) == {"x": 1.5, "n": 3}
    assert type(wire.encode(np.int64(7))) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "value is a object; tool values must be str, int, float, bool, None, bytes"),
        ({"a": [1, {2}]}, "value['a'][1] is a set"),
        ({1: "x"}, "value has a key of type int; keys must be str"),
        ([1, {"k": {(1, 2): 3}}], "value[1]['k'] has a key of type tuple"),
    ],
)
def test_what_cannot_cross_is_named_by_its_path(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        wire.encode(value)


def test_the_default_marker_crosses() -> None:
    assert wire.encode(wire.TOOL_DEFAULT) == {"$default": True}
    assert wire.decode({"$default": True}) is wire.TOOL_DEFAULT
    assert repr(wire.TOOL_DEFAULT) == "<tool default>"


def test_a_reply_is_a_value_or_a_tool_error() -> None:
    assert wire.reply_value({"ok": True, "value": {"$bytes": "AA=="}}) == b"\x00"
    with pytest.raises(wire.ToolError) as caught:
        wire.reply_value(
            {"ok": False, "tool": "f", "error": {"type": "KeyError", "message": "'k'"}}
        )
    error = caught.value
    assert (error.tool, error.type, error.message) == ("f", "KeyError", "'k'")
    assert str(error) == "tool f() failed: KeyError: 'k'"
    with pytest.raises(wire.ToolError, match=r"tool \?\(\) failed: Error: $"):
        wire.reply_value({"ok": False})


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2.5, None, True, "s", b"b", (1, 2)]}, True),
        (Text("x"), False),  # a subclass could run code of its own
        ({1: 2}, False),
        ([object()], False),
        ("x" * 100, True),
    ],
)
def test_plain_data_is_exact_built_in_types(value: Any, expected: bool) -> None:
    assert wire.plain(value) is expected


def test_plain_data_has_a_size_budget() -> None:
    # a container costs its length + 1, a scalar 1, a string or bytes its length
    assert wire.plain(list(range(10)), budget=21)
    assert not wire.plain(list(range(10)), budget=20)
    assert not wire.plain("x" * 11, budget=10)


# --------------------------------------------------------------------------- the bridge


def test_the_bridge_numbers_its_requests_and_encodes_arguments() -> None:
    seen: list[dict[str, Any]] = []

    def transport(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"ok": True, "tool": request["tool"], "value": request["args"]}

    bridge = wire.Bridge(transport)
    assert bridge.call("f", {"x": b"\x01", "y": (1, 2)}) == {"x": b"\x01", "y": [1, 2]}
    bridge.call("g", {})
    assert [(r["tool"], r["call"]) for r in seen] == [("f", 1), ("g", 2)]
    assert seen[0]["args"] == {"x": {"$bytes": "AQ=="}, "y": [1, 2]}
    with pytest.raises(TypeError, match=r"the arguments of f\(\)\['x'\] is a object"):
        bridge.call("f", {"x": object()})
    assert len(seen) == 2  # refused before the transport was asked


def test_async_calls_wait_on_threads_so_they_overlap() -> None:
    both = threading.Barrier(2, timeout=10)

    def transport(request: dict[str, Any]) -> dict[str, Any]:
        both.wait()  # returns only once the two calls are waiting at the same time
        return {"ok": True, "tool": request["tool"], "value": request["call"]}

    bridge = wire.Bridge(transport)

    async def main() -> list[Any]:
        return list(await asyncio.gather(bridge.acall("a", {}), bridge.acall("b", {})))

    assert sorted(asyncio.run(main())) == [1, 2]


def test_install_puts_the_bridge_in_builtins() -> None:
    before = getattr(builtins, "__eager_rt_tools__", None)
    try:
        bridge = wire.install(lambda request: {"ok": True, "value": 1})
        assert builtins.__eager_rt_tools__ is bridge  # type: ignore[attr-defined]
        assert bridge.ToolError is wire.ToolError
    finally:
        if before is None:
            del builtins.__eager_rt_tools__  # type: ignore[attr-defined]
        else:
            builtins.__eager_rt_tools__ = before  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- stubs, end to end


class Sandbox:
    """The tools' stubs defined in a namespace, calling a ToolHost on a loop in another thread."""

    def __init__(self, host: ToolHost, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.namespace: dict[str, Any] = {"__eager_rt_tools__": wire.Bridge(self._transport)}
        exec(stub_source(host.tools), self.namespace)  # noqa: S102 - our own generated stubs

    def _transport(self, request: dict[str, Any]) -> dict[str, Any]:
        # the request crosses as JSON, as it does from a sandbox
        crossed = json.loads(json.dumps(request))
        reply = asyncio.run_coroutine_threadsafe(self._ask(crossed), self.loop).result(30)
        return dict(json.loads(json.dumps(reply)))

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.host(request)

    def __getitem__(self, name: str) -> Any:
        return self.namespace[name]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def sandbox(
    loop: asyncio.AbstractEventLoop, *tools: Tool | Callable[..., Any], **kw: Any
) -> Sandbox:
    return Sandbox(ToolHost(as_tools(tools), **kw), loop)


_HIDDEN = object()


def every_kind(
    a: int, b: int = 2, /, c: str = "c", *rest: int, d: bool, e: Any = _HIDDEN, **extra: Any
) -> dict[str, Any]:
    """All five kinds of parameter, a literal default and one that is not."""
    return {"a": a, "b": b, "c": c, "rest": list(rest), "d": d, "e": e is _HIDDEN, "x": extra}


def test_a_stub_has_the_tools_name_signature_and_docstring(loop: asyncio.AbstractEventLoop) -> None:
    box = sandbox(loop, every_kind)
    stub = box["every_kind"]
    assert stub.__name__ == "every_kind"
    assert stub.__doc__ == inspect.getdoc(every_kind)
    real = inspect.signature(every_kind).parameters
    mine = inspect.signature(stub).parameters
    assert [(p.name, p.kind) for p in mine.values()] == [(p.name, p.kind) for p in real.values()]
    assert [mine[n].default for n in ("b", "c")] == [2, "c"]
    # a default the stub cannot write is left to the host function
    assert mine["e"].default is wire.TOOL_DEFAULT


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("every_kind(1, d=True)", {"a": 1, "b": 2, "c": "c", "rest": [], "d": True, "e": True}),
        (
            "every_kind(1, 5, 'z', 7, 8, d=False, e=None, k=1)",
            {"a": 1, "b": 5, "c": "z", "rest": [7, 8], "d": False, "e": False, "x": {"k": 1}},
        ),
        ("every_kind(1, c='q', d=True)", {"a": 1, "b": 2, "c": "q", "rest": [], "d": True}),
    ],
)
def test_every_kind_of_parameter_reaches_the_function(
    loop: asyncio.AbstractEventLoop, call: str, expected: dict[str, Any]
) -> None:
    box = sandbox(loop, every_kind)
    result = eval(call, box.namespace)  # noqa: S307 - a call of our own stub
    assert result == {"x": {}, "e": True, **expected}


def test_python_rejects_a_wrong_call_in_the_stub(loop: asyncio.AbstractEventLoop) -> None:
    box = sandbox(loop, every_kind)
    with pytest.raises(TypeError):
        box["every_kind"](a=1, d=True)  # positional-only, as on the host
    with pytest.raises(TypeError):
        box["every_kind"](1)  # d is required
    assert box.host.calls == []


def test_an_async_tool_has_an_async_stub(loop: asyncio.AbstractEventLoop) -> None:
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return url[::-1]

    box = sandbox(loop, fetch)
    assert inspect.iscoroutinefunction(box["fetch"])
    assert asyncio.run(box["fetch"]("abc")) == "cba"


@settings(max_examples=50, deadline=None)
@given(st.lists(values, max_size=3), st.dictionaries(st.sampled_from("pqrs"), values, max_size=3))
def test_any_plain_arguments_cross_and_come_back(
    loop: asyncio.AbstractEventLoop, args: list[Any], kwargs: dict[str, Any]
) -> None:
    def echo(*args: Any, **kwargs: Any) -> list[Any]:
        return [list(args), kwargs]

    box = sandbox(loop, echo)
    assert box["echo"](*args, **kwargs) == [args, kwargs]


def test_a_tool_error_is_raised_with_its_fields(loop: asyncio.AbstractEventLoop) -> None:
    def fail(n: int) -> None:
        raise ValueError(f"bad {n}")

    box = sandbox(loop, fail)
    with pytest.raises(wire.ToolError) as caught:
        box["fail"](3)
    assert (caught.value.tool, caught.value.type, caught.value.message) == (
        "fail",
        "ValueError",
        "bad 3",
    )
    assert box["ToolError"] is wire.ToolError


def test_stub_source_refuses_nothing_it_can_define() -> None:
    def lam(x=lambda: 1) -> None:  # type: ignore[no-untyped-def]  # noqa: ANN001
        pass

    source = stub_source(as_tools([lam]))
    assert "__eager_rt_tools__.DEFAULT" in source
    compile(source, "<stubs>", "exec")


# --------------------------------------------------------------------------- declarations


def test_tool_declarations() -> None:
    def f(x: int) -> int:
        return x

    t = tool(f, read_only=True, timeout=2.0, name="g")
    assert (t.name, t.read_only, t.timeout, t.requires_approval, t.is_async) == (
        "g",
        True,
        2.0,
        False,
        False,
    )
    decorated = tool(read_only=True)(f)
    assert decorated.name == "f" and decorated.read_only
    assert not as_tools([f])["f"].read_only  # a plain callable: not read-only
    for bad in ("class", "two words", "1st"):
        with pytest.raises(ValueError, match="Python identifier"):
            tool(f, name=bad)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        tool(f, timeout=0)
    with pytest.raises(ValueError, match="two tools are named 'f'"):
        as_tools([f, tool(f)])


def test_canonical_arguments_ignore_key_order() -> None:
    assert canonical({"a": 1, "b": [1, b"x"]}) == canonical({"b": [1, b"x"], "a": 1})
    assert canonical({"a": 1}) != canonical({"a": 1.5})


# --------------------------------------------------------------------------- the host's paths


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualClockLoop}


def request(name: str, args: Mapping[str, Any], call: int = 1) -> dict[str, Any]:
    return {"tool": name, "args": wire.encode(dict(args)), "call": call}


def error_of(reply: dict[str, Any]) -> tuple[str, str]:
    assert reply["ok"] is False, reply
    return reply["error"]["type"], reply["error"]["message"]


@pytest.mark.anyio
async def test_requests_the_host_cannot_bind_are_refused() -> None:
    ran: list[int] = []

    def square(n: int) -> int:
        ran.append(n)
        return n * n

    host = ToolHost(as_tools([square]))
    assert error_of(await host(request("cube", {"n": 2}))) == ("NameError", "no tool named 'cube'")
    assert error_of(await host({"tool": "square", "args": [1], "call": 1}))[0] == "TypeError"
    assert error_of(await host(request("square", {"m": 2}))) == (
        "TypeError",
        "square() got unexpected arguments ['m']",
    )
    assert error_of(await host(request("square", {})))[0] == "TypeError"
    kind, message = error_of(await host(request("square", {"n": "two"})))
    assert kind == "ValidationError" and "n" in message
    assert ran == []
    # refusals before binding leave no record; a validation failure is a call that failed
    assert [(c.tool, c.ok) for c in host.calls] == [("square", False)]


@pytest.mark.anyio
async def test_a_signature_pydantic_cannot_model_is_bound_but_not_validated() -> None:
    class Opaque:
        pass

    def take(x: Opaque) -> str:
        return type(x).__name__

    host = ToolHost(as_tools([take]))
    reply = await host(request("take", {"x": 1}))
    assert reply == {"ok": True, "tool": "take", "value": "int"}


@pytest.mark.anyio
async def test_a_value_that_cannot_go_back_is_an_error() -> None:
    def leak() -> object:
        return object()

    host = ToolHost(as_tools([leak]))
    kind, message = error_of(await host(request("leak", {})))
    assert kind == "TypeError"
    assert message.startswith("the value leak() returned is a object")
    assert host.calls[0].ok is False


@pytest.mark.anyio
async def test_a_tool_past_its_timeout_is_a_timeout_error() -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    host = ToolHost(as_tools([tool(slow, timeout=0.5)]), t0=0.0)
    t0 = asyncio.get_running_loop().time()
    host.t0 = t0
    assert error_of(await host(request("slow", {}))) == (
        "TimeoutError",
        "slow() did not return within 0.5 s",
    )
    call = host.calls[0]
    assert (call.started, call.ended, call.error) == (
        0.0,
        0.5,
        "TimeoutError: slow() did not return within 0.5 s",
    )


@pytest.mark.anyio
async def test_approval_paths() -> None:
    ran: list[int] = []

    def pay(amount: int) -> str:
        ran.append(amount)
        return "paid"

    paying = tool(pay, requires_approval=True)
    nobody = ToolHost(as_tools([paying]))
    assert error_of(await nobody(request("pay", {"amount": 1}))) == (
        "PermissionError",
        "pay() requires approval and the run has no approve=",
    )

    asked: list[tuple[str, dict[str, Any]]] = []

    async def approve(t: Tool, arguments: dict[str, Any]) -> bool:
        asked.append((t.name, arguments))
        await asyncio.sleep(1.0)  # a human takes a while
        return bool(arguments["amount"] < 10)

    host = ToolHost(as_tools([paying]), approve=approve)
    assert (await host(request("pay", {"amount": 5})))["value"] == "paid"
    assert error_of(await host(request("pay", {"amount": 50}))) == (
        "PermissionError",
        "the call of pay() was not approved",
    )
    assert asked == [("pay", {"amount": 5}), ("pay", {"amount": 50})]
    assert ran == [5]
    assert [(c.approved, c.ok) for c in host.calls] == [(True, True), (False, False)]

    def broken(t: Tool, arguments: dict[str, Any]) -> bool:
        raise RuntimeError("approval service down")

    failing = ToolHost(as_tools([paying]), approve=broken)
    assert error_of(await failing(request("pay", {"amount": 1}))) == (
        "RuntimeError",
        "approval service down",
    )
    assert ran == [5]


@pytest.mark.anyio
async def test_records_and_callbacks() -> None:
    events: list[tuple[str, int, bool | None]] = []

    def on_call(c: ToolCall) -> None:
        events.append(("call", c.id, c.ok))

    def on_return(c: ToolCall) -> None:
        events.append(("return", c.id, c.ok))

    async def wait(seconds: float, label: str = "x") -> str:
        await asyncio.sleep(seconds)
        return label

    t0 = asyncio.get_running_loop().time()
    host = ToolHost(
        as_tools([tool(wait, read_only=True)]), t0=t0, on_call=on_call, on_return=on_return
    )
    await host(request("wait", {"seconds": 2.0, "label": wire.TOOL_DEFAULT}))
    [call] = host.calls
    assert call.arguments == {"seconds": 2.0}  # a default left to the tool is not shown
    assert (call.id, call.started, call.ended, call.duration, call.read_only) == (
        1,
        0.0,
        2.0,
        2.0,
        True,
    )
    assert (call.speculative, call.claimed, call.wasted) == (False, True, False)
    assert events == [("call", 1, None), ("return", 1, True)]


@pytest.mark.anyio
async def test_sync_tools_run_on_threads() -> None:
    main = threading.get_ident()
    where: list[int] = []

    def which() -> bool:
        where.append(threading.get_ident())
        return True

    host = ToolHost(as_tools([which]))
    await host(request("which", {}))
    assert where and where[0] != main


def test_nan_and_infinity_cross_as_floats() -> None:
    for value in (math.inf, -math.inf):
        assert wire.decode(wire.encode(value)) == value
    assert math.isnan(wire.decode(wire.encode(math.nan)))


@pytest.mark.anyio
async def test_a_record_says_whether_the_function_ran() -> None:
    """The ledger's rule: only calls that reached the function are side effects that happened."""

    def send(to: int) -> str:
        if to == 0:
            raise ValueError("no such recipient")
        return "sent"

    guarded = tool(send, requires_approval=True)
    no_approver = ToolHost(as_tools([guarded]))
    await no_approver(request("send", {"to": 1}))
    host = ToolHost(as_tools([tool(send)]))
    await host(request("send", {"to": "not a number"}))  # fails validation
    await host(request("send", {"to": 0}))  # runs and raises
    await host(request("send", {"to": 2}))  # runs
    assert [c.ran for c in no_approver.calls] == [False]
    assert [(c.ran, c.ok) for c in host.calls] == [(False, False), (True, False), (True, True)]


def test_a_tool_is_bounded_unless_declared_otherwise() -> None:
    def f() -> None:
        return None

    from eager_rt.tools import DEFAULT_TOOL_TIMEOUT

    assert tool(f).timeout == DEFAULT_TOOL_TIMEOUT == 300.0
    assert as_tools([f])["f"].timeout == DEFAULT_TOOL_TIMEOUT
    assert tool(f, timeout=None).timeout is None


# ----------------------------------------------------------------- threads and inline tools


def _alive(idents: set[int]) -> list[threading.Thread]:
    """The threads among ``idents`` still running."""
    return [t for t in threading.enumerate() if t.ident in idents]


def test_sync_tools_run_on_the_hosts_own_bounded_threads_which_end_with_it() -> None:
    entered = threading.Semaphore(0)
    go = threading.Event()
    idents: set[int] = set()

    def hold(n: int) -> int:
        idents.add(threading.get_ident())
        assert threading.current_thread().name.startswith("eager_rt-tool")
        entered.release()
        assert go.wait(30)
        return n

    async def main() -> None:
        host = ToolHost(as_tools([hold]), max_threads=2)
        replies = [host(request("hold", {"n": n}, call=n)) for n in range(4)]
        # two calls hold both threads; the other two wait for one (an unbounded
        # pool would have started a thread for each)
        for _ in range(2):
            assert await asyncio.to_thread(entered.acquire, True, 30)
        go.set()
        assert [(await r)["value"] for r in replies] == [0, 1, 2, 3]
        assert len(idents) == 2
        assert len(_alive(idents)) == 2
        await host.aclose()
        assert _alive(idents) == []
        # the run is over: a late call is refused, and runs nothing
        assert error_of(await host(request("hold", {"n": 9}))) == (
            "RuntimeError",
            "the run is over: no tool calls now",
        )

    asyncio.run(main())
    assert len(idents) == 2


def test_aclose_waits_for_a_call_still_on_its_thread() -> None:
    started = threading.Event()
    go = threading.Event()
    idents: set[int] = set()

    def hold() -> str:
        idents.add(threading.get_ident())
        started.set()
        assert go.wait(30)
        return "done"

    async def main() -> None:
        host = ToolHost(as_tools([hold]))
        reply = host(request("hold", {}))
        assert await asyncio.to_thread(started.wait, 30)
        reply.cancel()  # the execution ended: nobody waits for the reply any more
        closing = asyncio.ensure_future(host.aclose())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not closing.done()  # the function cannot have returned: go is not set
        go.set()
        await closing
        assert idents and _alive(idents) == []

    asyncio.run(main())


def test_aclose_names_the_calls_that_outlast_its_timeout() -> None:
    started = threading.Event()
    go = threading.Event()
    idents: set[int] = set()

    def stuck() -> None:
        idents.add(threading.get_ident())
        started.set()
        go.wait(30)

    async def main() -> None:
        host = ToolHost(as_tools([tool(stuck, timeout=None)]))
        reply = host(request("stuck", {}))
        assert await asyncio.to_thread(started.wait, 30)
        with pytest.raises(TimeoutError, match=r"still on their threads after 0.05 s: stuck\(\)"):
            await host.aclose(timeout=0.05)
        go.set()
        assert not reply.done()  # its reply was never settled: the execution would cancel it
        reply.cancel()

    try:
        asyncio.run(main())
    finally:
        go.set()
    for thread in _alive(idents):
        thread.join(30)  # it ends once its function returns
    assert idents and _alive(idents) == []


def test_a_sync_tool_past_its_timeout_is_answered_and_its_late_result_dropped() -> None:
    go = threading.Event()

    def slow() -> str:
        assert go.wait(30)
        return "late"

    async def main() -> None:
        host = ToolHost(as_tools([tool(slow, timeout=0.05)]))
        assert error_of(await host(request("slow", {}))) == (
            "TimeoutError",
            "slow() did not return within 0.05 s",
        )
        [call] = host.calls
        assert (call.ok, call.error) == (False, "TimeoutError: slow() did not return within 0.05 s")
        go.set()
        await host.aclose()  # the thread came back: its value changed nothing
        assert (call.ok, call.error) == (False, "TimeoutError: slow() did not return within 0.05 s")

    try:
        asyncio.run(main())
    finally:
        go.set()


@pytest.mark.anyio
async def test_an_inline_tool_runs_on_the_loop_and_answers_at_once() -> None:
    loop_thread = threading.get_ident()
    where: list[int] = []

    def add(a: int, b: int = 1) -> int:
        where.append(threading.get_ident())
        return a + b

    host = ToolHost(as_tools([tool(add, inline=True, read_only=True)]))
    reply = host(request("add", {"a": 2, "b": 3}))
    assert reply.done()  # no thread, no task: ready when the host returns
    assert reply.result()["value"] == 5
    kind, _ = error_of(await host(request("add", {"a": "x", "b": 1})))
    assert kind == "ValidationError"
    assert where == [loop_thread]
    assert [(c.ran, c.ok) for c in host.calls] == [(True, True), (False, False)]
    await host.aclose()


@pytest.mark.anyio
async def test_an_inline_tool_that_requires_approval_waits_for_it() -> None:
    def pay(amount: int) -> str:
        return f"paid {amount}"

    async def approve(t: Tool, arguments: dict[str, Any]) -> bool:
        await asyncio.sleep(1)
        return bool(arguments["amount"] < 10)

    host = ToolHost(as_tools([tool(pay, inline=True, requires_approval=True)]), approve=approve)
    reply = host(request("pay", {"amount": 5}))
    assert not reply.done()
    assert (await reply)["value"] == "paid 5"
    assert error_of(await host(request("pay", {"amount": 50})))[0] == "PermissionError"
    assert [(c.approved, c.ran) for c in host.calls] == [(True, True), (False, False)]


def test_inline_is_for_sync_tools() -> None:
    async def f() -> None:
        return None

    with pytest.raises(ValueError, match="inline is for sync tools"):
        tool(f, inline=True)


def test_an_inline_tool_that_holds_the_loop_is_warned_about() -> None:
    def sleepy() -> int:
        import time

        time.sleep(0.15)  # blocks: what an inline tool must not do
        return 1

    async def main() -> None:
        host = ToolHost(as_tools([tool(sleepy, inline=True)]))
        with pytest.warns(RuntimeWarning, match=r"sleepy\(\) is declared inline"):
            assert (await host(request("sleepy", {})))["value"] == 1

    asyncio.run(main())


def test_a_sync_tool_sees_the_callers_context() -> None:
    import contextvars

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")

    def whoami() -> str:
        return who.get()

    async def main() -> None:
        who.set("the run")
        async with ToolHost(as_tools([whoami])) as host:
            assert (await host(request("whoami", {})))["value"] == "the run"

    asyncio.run(main())


def test_max_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_threads must be >= 1"):
        ToolHost({}, max_threads=0)


# ----------------------------------------------------------------- replies sent by the tool thread


def test_a_tool_thread_sends_its_reply_before_the_loop_settles_the_books() -> None:
    """With ``respond`` the reply leaves from the tool thread; the books are settled on the loop."""
    sent: list[tuple[dict[str, Any], bool]] = []

    async def main() -> None:
        loop_thread = threading.get_ident()
        host = ToolHost(as_tools([tool(lambda n: 2 * n, name="double")]))

        def respond(reply: dict[str, Any]) -> None:
            [record] = host.calls
            sent.append((reply, threading.get_ident() != loop_thread and record.ended is None))

        reply = await host({**request("double", {"n": 21}), "respond": respond})
        assert reply == {"ok": True, "tool": "double", "value": 42}
        assert sent == [(reply, True)]  # once, from the thread, before the books
        [record] = host.calls
        assert (record.ok, record.ended is not None) == (True, True)
        await host.aclose()

    asyncio.run(main())


def test_a_reply_is_sent_once_when_the_timeout_and_the_return_race() -> None:
    """The timeout's reply goes through the future; the late value is never sent after it."""
    go = threading.Event()
    sent: list[dict[str, Any]] = []

    def slow() -> str:
        assert go.wait(30)
        return "late"

    async def main() -> None:
        host = ToolHost(as_tools([tool(slow, timeout=0.05)]))
        answer = await host({**request("slow", {}), "respond": sent.append})
        assert error_of(answer)[0] == "TimeoutError"
        go.set()
        await host.aclose()
        assert sent == []  # the loop answered (timeout): the thread sent nothing
        [call] = host.calls
        assert call.error == "TimeoutError: slow() did not return within 0.05 s"

    try:
        asyncio.run(main())
    finally:
        go.set()


def test_a_call_cancelled_after_its_thread_sent_the_reply_is_still_recorded() -> None:
    """The sandbox has the value: the ledger must say the call ran and returned."""

    async def main() -> None:
        sent = asyncio.Event()
        loop = asyncio.get_running_loop()
        host = ToolHost(as_tools([tool(lambda: "v", name="get")]))
        answer = host(
            {**request("get", {}), "respond": lambda _r: loop.call_soon_threadsafe(sent.set)}
        )
        await sent.wait()
        answer.cancel()  # the execution ended before the loop settled the books
        await host.aclose()
        [call] = host.calls
        assert (call.ok, call.ended is not None) == (True, True)

    asyncio.run(main())
