"""The worker protocol: framing both ends share, and the version handshake at start-up."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eager_rt.backends import _protocol as protocol
from eager_rt.backends.local import LocalSession
from hypothesis import given
from hypothesis import strategies as st

from eager_rt.executor import BackendError, Status

pytestmark = pytest.mark.anyio

texts = st.text(max_size=40)  # lone surrogates included: the worker prints whatever code writes
messages = st.dictionaries(
    st.sampled_from(["type", "op", "id", "text", "code", "data"]),
    st.one_of(texts, st.integers(), st.none(), st.lists(texts, max_size=3)),
    max_size=5,
)


@given(st.lists(messages, max_size=6), st.lists(st.integers(1, 50), max_size=30))
def test_frames_survive_any_split(batch: list[dict[str, Any]], cuts: list[int]) -> None:
    """However the bytes arrive, the decoder returns the same messages, in order."""
    stream = b"".join(protocol.encode(m) for m in batch)
    decoder = protocol.FrameDecoder()
    received: list[dict[str, Any]] = []
    pos = 0
    for size in [*cuts, len(stream)]:
        decoder.feed(stream[pos : pos + size])
        pos += size
        while (message := decoder.next()) is not None:
            received.append(message)
    assert received == batch
    assert not decoder.pending


def test_a_frame_is_ascii_json_behind_a_big_endian_length() -> None:
    frame = protocol.encode({"type": "stream", "text": "é\ud800"})
    length = int.from_bytes(frame[:4], "big")
    assert length == len(frame) - 4
    body = frame[4:].decode("ascii")  # escaped: a lone surrogate cannot break the channel
    assert json.loads(body) == {"type": "stream", "text": "é\ud800"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ((protocol.MAX_FRAME + 1).to_bytes(4, "big"), "exceeds the limit"),
        ((7).to_bytes(4, "big") + b'{"a":1,', "not ASCII JSON"),
        ((3).to_bytes(4, "big") + b"[1]", "not a JSON object"),
        ((3).to_bytes(4, "big") + "é".encode() + b"}", "not ASCII JSON"),
    ],
    ids=["oversized", "truncated-json", "not-an-object", "not-ascii"],
)
def test_corruption_is_a_protocol_error(data: bytes, problem: str) -> None:
    decoder = protocol.FrameDecoder()
    decoder.feed(data)
    with pytest.raises(protocol.ProtocolError, match=problem):
        decoder.next()


def test_version_mismatch_names_both_versions() -> None:
    assert protocol.version_mismatch(2, 2) is None
    message = protocol.version_mismatch(2, 1)
    assert message is not None
    assert "host speaks worker protocol 2" in message and "worker speaks 1" in message


async def test_a_worker_refuses_a_host_of_another_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host's init frame says its version; a worker of another one answers ``fatal``."""
    real = protocol.init_frame
    monkeypatch.setattr(protocol, "init_frame", lambda options: {**real(options), "protocol": 99})
    session = LocalSession()
    expected = f"host speaks worker protocol 99, the worker speaks {protocol.VERSION}"
    with pytest.raises(BackendError, match=expected):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


async def test_a_host_refuses_a_worker_of_another_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker whose ``ready`` says another version is stopped before any code is sent."""
    shipped = protocol.VERSION  # the worker runs its own copy of the module: this version
    real = protocol.init_frame
    monkeypatch.setattr(
        protocol, "init_frame", lambda options: {**real(options), "protocol": shipped}
    )
    monkeypatch.setattr(protocol, "VERSION", shipped + 1)  # the host's view only
    session = LocalSession()
    expected = f"host speaks worker protocol {shipped + 1}, the worker speaks {shipped}"
    with pytest.raises(BackendError, match=expected):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


async def test_the_session_works_after_a_refused_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real = protocol.init_frame
    monkeypatch.setattr(protocol, "init_frame", lambda options: {**real(options), "protocol": 0})
    session = LocalSession()
    with pytest.raises(BackendError):
        await session.start(timeout=60)
    monkeypatch.setattr(protocol, "init_frame", real)
    await session.start(timeout=60)
    try:
        result = await session.execute("print('up')", timeout=30)
        assert result.status is Status.OK and result.stdout == "up\n"
    finally:
        await session.close()


async def test_peek_reads_plain_data_only_and_runs_no_code() -> None:
    """Speculation reads session values; only exact plain data crosses, no user code runs."""
    session = LocalSession()
    await session.start(timeout=60)
    try:
        setup = (
            "cities = ['Oslo', 'Rome']\n"
            "cfg = {'k': (1, b'x'), 'n': None}\n"
            "class Loud(str):\n"
            "    def __eq__(self, other):\n"
            "        print('ran'); return True\n"
            "loud = Loud('x')\n"
            "nested = [{'a': Loud('y')}]\n"
            "big = list(range(2_000_000))\n"
            "seen = 0\n"
        )
        assert (await session.execute(setup, timeout=60)).ok
        names = ["cities", "cfg", "loud", "nested", "big", "missing", "seen"]
        values = await session.peek(names)
        assert values == {"cities": ["Oslo", "Rome"], "cfg": {"k": [1, b"x"], "n": None}, "seen": 0}
        after = await session.execute("print(seen)", timeout=60)
        assert after.stdout == "0\n"  # nothing printed 'ran' in between
    finally:
        await session.close()
