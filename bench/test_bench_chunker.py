"""Chunker cost on the standard library, native vs pure vs two baselines, one run.

Run: ``.venv/bin/pytest bench/test_bench_chunker.py -q -s`` (prints the table).

Corpus (deterministic): every 8th compiling ``.py`` file of the running
Python's stdlib (sorted listing, ``site-packages`` excluded), each cut into
3–5 character pieces by ``random.Random(crc32(path))`` — the size of LLM
tokens.  Measured per ``feed`` call with ``perf_counter_ns``:

* per-token cost: every ``feed`` call;
* δ: the ``feed`` calls that returned a chunk — the time from the token that
  completes a statement to that chunk being returned (scan + the one
  ``compile()`` confirmation); also measured without the confirmation, to
  show which part is the scanner's.  δ is also split by what came out:
  declarations (``Chunk.declaration``: def/class, whose bodies are the
  longest compiles, but gating defers them anyway, so their δ delays no
  execution) and the other statements (whose δ is on the critical path);
* throughput: streaming MB/s (UTF-8 bytes over total time in 3–5 character
  pieces) and bulk MB/s (each file fed in one piece), for the chunker (which
  includes the ``compile()`` of every statement) and for the scanner alone
  (the hot loop the native extension replaces).

The same is measured on real LLM token boundaries (cl100k pieces, from
``eager_rt.sources.replay``) when ``tiktoken`` is installed: there ``"\n\n\n"``
is one token, so the early confirmation at PEP 8's two blank lines lands
before the deciding token, as it would in a live stream.

Baselines, on the files of 500+ lines of the corpus (the regime where they
hurt), at the same token boundaries:

* ``ast.parse`` of the whole buffer at every token;
* ``codeop.compile_command(pending, symbol="exec")`` at every token, where
  ``pending`` is the text since the last statement boundary (what a
  REPL-style chunker would re-check).

Re-parsing is quadratic, so baselines are timed on an evenly spaced sample
of 60 token positions per file (positions ``k·n/60``, best of 2 each); their
mean over the sample estimates the mean per-token cost without running for
minutes.  The chunkers are timed on every token of the same files (best of
3 per token, native and pure fed in lockstep so both see the same load).  Ratios use means
(total time scales with the mean); medians are printed too.
"""

from __future__ import annotations

import ast
import codeop
import contextlib
import gc
import random
import statistics
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from eager_rt.chunk import Chunk
from eager_rt.chunker import Chunker
from eager_rt.scanner import PureScanner, native_scanner
from eager_rt.scanner_pure import Scanner as ScannerType
from tests.chunker_helpers import stdlib_sources

NativeScanner = native_scanner()
STEP = 8
ROUNDS = 3
BASELINE_POSITIONS = 60
LONG = 500  # lines

RESULTS: dict[str, dict[str, float]] = {}


def _pieces(name: str, src: str) -> list[str]:
    rng = random.Random(zlib.crc32(name.encode()))
    out = []
    i = 0
    while i < len(src):
        k = rng.randint(3, 5)
        out.append(src[i : i + k])
        i += k
    return out


CORPUS = stdlib_sources(STEP)
TOKENS = {name: _pieces(name, src) for name, src in CORPUS}
LONG_FILES = [(n, s) for n, s in CORPUS if s.count("\n") >= LONG]
NBYTES = sum(len(s.encode()) for _, s in CORPUS)


_LLM: list[dict[str, list[str]] | None] = []


def _llm_tokens() -> dict[str, list[str]] | None:
    """The corpus in real LLM token pieces (cl100k), when the tokenizer is installed."""
    if not _LLM:
        try:
            from eager_rt.sources.replay import tokenize_pieces

            _LLM.append({name: tokenize_pieces(src, "cl100k") for name, src in CORPUS})
        except (ImportError, RuntimeError):
            _LLM.append(None)
    return _LLM[0]


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98]


#: what a ``feed`` call returned: nothing, only declarations, or a statement that runs now
NONE, DECL, STMT = 0, 1, 2


def _returned(chunks: list[Chunk]) -> int:
    if not chunks:
        return NONE
    return DECL if all(c.declaration for c in chunks) else STMT


def _stats(times: list[float], returned: list[int], nbytes: int) -> dict[str, float]:
    delta = [t for t, r in zip(times, returned, strict=True) if r != NONE]
    decl = [t for t, r in zip(times, returned, strict=True) if r == DECL]
    stmt = [t for t, r in zip(times, returned, strict=True) if r == STMT]
    return {
        "tokens": len(times),
        "chunks": len(delta),
        "token_mean_us": statistics.fmean(times),
        "token_median_us": statistics.median(times),
        "token_p99_us": _p99(times),
        "delta_median_us": statistics.median(delta),
        "delta_p99_us": _p99(delta),
        "decl_chunks": len(decl),
        "decl_delta_median_us": statistics.median(decl),
        "decl_delta_p99_us": _p99(decl),
        "stmt_chunks": len(stmt),
        "stmt_delta_median_us": statistics.median(stmt),
        "stmt_delta_p99_us": _p99(stmt),
        "stream_mb_s": nbytes / (sum(times) * 1e-6) / 1e6,
    }


def _lockstep(
    variants: dict[str, Callable[[], Chunker]],
    files: list[tuple[str, str]],
    tokens: dict[str, list[str]],
) -> dict[str, dict[str, float]]:
    """Feed every variant the same pieces in lockstep; per-call times in µs.

    Each piece goes to every variant in turn (order alternating between
    rounds), so all see the same machine load; each feed is timed ``ROUNDS``
    times with fresh chunkers and the minimum kept, which removes preemption
    noise on a shared machine without hiding any steady cost.
    """
    clock = time.perf_counter_ns
    times: dict[str, list[float]] = {k: [] for k in variants}
    returned: dict[str, list[int]] = {k: [] for k in variants}
    gc.collect()
    for name, _src in files:
        pieces = tokens[name]
        best = {k: [float("inf")] * len(pieces) for k in variants}
        got_any = {k: [NONE] * len(pieces) for k in variants}
        for r in range(ROUNDS):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            chunkers = {k: variants[k]() for k in order}
            for i, piece in enumerate(pieces):
                for k in order:
                    feed = chunkers[k].feed
                    t0 = clock()
                    got = feed(piece)
                    dt = clock() - t0
                    if dt < best[k][i]:
                        best[k][i] = dt
                    got_any[k][i] = _returned(got)
            for chunker in chunkers.values():
                chunker.close()
        for k in variants:
            times[k] += [t / 1000 for t in best[k]]
            returned[k] += got_any[k]
    nbytes = sum(len(s.encode()) for _, s in files)
    return {k: _stats(times[k], returned[k], nbytes) for k in variants}


def _best_of(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _bulk(scanner_cls: type[ScannerType]) -> float:
    """Chunker, each file in one piece: MB/s (best of ``ROUNDS``)."""

    def run() -> None:
        for _, src in CORPUS:
            chunker = Chunker(scanner_cls=scanner_cls)
            chunker.feed(src)
            chunker.close()

    return NBYTES / _best_of(run) / 1e6


def _scan_only(scanner_cls: type[ScannerType]) -> tuple[float, float]:
    """Scanner alone: (bulk MB/s, MB/s in the same 3-5 char pieces), best of ``ROUNDS``."""

    def bulk() -> None:
        for _, src in CORPUS:
            scanner = scanner_cls(False)  # no probes: nothing would answer them here
            scanner.feed(src)
            scanner.close()

    def pieces() -> None:
        for name, _src in CORPUS:
            scanner = scanner_cls(False)
            for piece in TOKENS[name]:
                scanner.feed(piece)
            scanner.close()

    return NBYTES / _best_of(bulk) / 1e6, NBYTES / _best_of(pieces) / 1e6


def _boundaries(src: str) -> list[int]:
    chunker = Chunker(scanner_cls=PureScanner)
    return [c.end for c in chunker.feed(src) + chunker.close()]


def _baseline(check: Callable[[str, int, int], Any]) -> dict[str, float]:
    """Time ``check(src, pending_start, token_end)`` at sampled token ends of long files."""
    samples: list[float] = []
    clock = time.perf_counter_ns
    for name, src in LONG_FILES:
        ends = []
        pos = 0
        for piece in TOKENS[name]:
            pos += len(piece)
            ends.append(pos)
        bounds = _boundaries(src)
        step = max(1, len(ends) // BASELINE_POSITIONS)
        b = 0
        for k in range(0, len(ends), step):
            end = ends[k]
            while b < len(bounds) and bounds[b] < end:
                b += 1
            start = bounds[b - 1] if b else 0
            best = float("inf")
            for _ in range(2):
                t0 = clock()
                check(src, start, end)
                best = min(best, clock() - t0)
            samples.append(best / 1000)
    return {
        "token_mean_us": statistics.fmean(samples),
        "token_median_us": statistics.median(samples),
    }


def _ast_whole(src: str, start: int, end: int) -> None:
    with contextlib.suppress(SyntaxError):
        ast.parse(src[:end])


def _codeop_pending(src: str, start: int, end: int) -> None:
    with contextlib.suppress(SyntaxError, ValueError, OverflowError):
        codeop.compile_command(src[start:end], "<stream>", "exec")


def _run(benchmark: Any, key: str, fn: Callable[[], dict[str, float]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result: dict[str, float] = benchmark.pedantic(fn, rounds=1, iterations=1)
    RESULTS[key] = result
    benchmark.extra_info.update(result)


class _NoConfirm(Chunker):
    """Measurement only: the chunker minus its compile(), to split δ into parts."""

    def _compile(self, code: str, start: int, first_line: int | None = None) -> None:
        return None


def _chunkers_run() -> dict[str, dict[str, float]]:
    scanners: dict[str, type[ScannerType]] = {"pure": PureScanner}
    if NativeScanner is not None:
        scanners = {"native": NativeScanner, **scanners}
    variants: dict[str, Callable[[], Chunker]] = {}
    for key, cls in scanners.items():
        variants[key] = lambda cls=cls: Chunker(scanner_cls=cls)  # type: ignore[misc]
        variants[key + "/bare"] = lambda cls=cls: _NoConfirm(scanner_cls=cls)  # type: ignore[misc]
    main = _lockstep(variants, CORPUS, TOKENS)
    long = _lockstep({k: variants[k] for k in scanners}, LONG_FILES, TOKENS)
    llm_tokens = _llm_tokens()
    llm = None
    if llm_tokens is not None:
        llm = _lockstep({k: variants[k] for k in scanners}, CORPUS, llm_tokens)
    out: dict[str, dict[str, float]] = {}
    for key, cls in scanners.items():
        r = dict(main[key])
        r["bare_delta_median_us"] = main[key + "/bare"]["delta_median_us"]
        r["bare_delta_p99_us"] = main[key + "/bare"]["delta_p99_us"]
        r["bare_stmt_delta_median_us"] = main[key + "/bare"]["stmt_delta_median_us"]
        r["bare_stmt_delta_p99_us"] = main[key + "/bare"]["stmt_delta_p99_us"]
        r["long_token_mean_us"] = long[key]["token_mean_us"]
        r["long_token_median_us"] = long[key]["token_median_us"]
        if llm is not None:
            r["llm_delta_median_us"] = llm[key]["delta_median_us"]
            r["llm_delta_p99_us"] = llm[key]["delta_p99_us"]
            for part in ("stmt", "decl"):
                for q in ("median", "p99"):
                    r[f"llm_{part}_delta_{q}_us"] = llm[key][f"{part}_delta_{q}_us"]
            r["llm_token_mean_us"] = llm[key]["token_mean_us"]
        r["bulk_mb_s"] = _bulk(cls)
        r["scan_bulk_mb_s"], r["scan_stream_mb_s"] = _scan_only(cls)
        out[key] = r
    return out


def test_native_and_pure(benchmark: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = benchmark.pedantic(_chunkers_run, rounds=1, iterations=1)
    RESULTS.update(result)
    for key, figures in result.items():
        benchmark.extra_info.update({f"{key}_{k}": v for k, v in figures.items()})


def _floor(tokens: dict[str, list[str]]) -> dict[str, float]:
    """What any exact chunker pays at the deciding piece, whatever it does ahead of time.

    A chunk's text is final once the newline ending its last line has
    arrived. When that newline comes in the same piece as the token that
    shows the statement is over, nothing could have compiled the final text
    earlier, so that piece's δ includes one ``compile()`` of the whole chunk
    (best of ``ROUNDS``); for every other chunk the floor is zero. The p99 of
    these floors bounds the δ p99 of any chunker that confirms by compiling.
    """
    floors: list[float] = []
    clock = time.perf_counter_ns
    for name, _src in CORPUS:
        chunker = Chunker(scanner_cls=PureScanner)
        for piece in tokens[name]:
            before = chunker.offset
            for chunk in chunker.feed(piece):
                if before >= chunk.end:
                    floors.append(0.0)
                    continue
                best = float("inf")
                for _ in range(ROUNDS):
                    t0 = clock()
                    with contextlib.suppress(SyntaxError, ValueError):
                        compile(chunk.code, "<floor>", "exec", dont_inherit=True)
                    best = min(best, clock() - t0)
                floors.append(best / 1000)
        chunker.close()
    return {
        "p99_us": _p99(floors),
        "over_200us": sum(f > 200 for f in floors) / len(floors),
        "chunks": len(floors),
    }


def test_exact_chunker_floor(benchmark: Any) -> None:
    def run() -> dict[str, float]:
        out = {f"pieces_{k}": v for k, v in _floor(TOKENS).items()}
        llm_tokens = _llm_tokens()
        if llm_tokens is not None:
            out.update({f"llm_{k}": v for k, v in _floor(llm_tokens).items()})
        return out

    _run(benchmark, "floor", run)


def test_baseline_ast_whole_buffer(benchmark: Any) -> None:
    _run(benchmark, "ast", lambda: _baseline(_ast_whole))


def test_baseline_codeop(benchmark: Any) -> None:
    _run(benchmark, "codeop", lambda: _baseline(_codeop_pending))


def test_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the table of figures and ratios (measured above, same run)."""
    if not {"pure", "ast", "codeop"} <= RESULTS.keys():
        pytest.skip("run the whole module")
    lines = [
        f"corpus: {len(CORPUS)} stdlib files, {NBYTES / 1e6:.2f} MB, "
        f"{sum(len(t) for t in TOKENS.values())} tokens of 3-5 chars; "
        f"{len(LONG_FILES)} files of {LONG}+ lines; δ split into stmt (a chunk that runs now) "
        f"and decl (def/class only, deferred by gating)",
        f"{'':8} {'tok mean':>9} {'tok med':>8} {'tok p99':>8} {'δ med':>8} {'δ p99':>8} "
        f"{'stmt δ med':>10} {'stmt δ p99':>10} {'decl δ med':>10} {'decl δ p99':>10} "
        f"{'stream':>10} {'bulk':>10} {'500+ mean':>10}",
    ]
    for key in ("native", "pure"):
        r = RESULTS.get(key)
        if r is None:
            continue
        lines.append(
            f"{key:8} {r['token_mean_us']:8.2f}µ {r['token_median_us']:7.2f}µ "
            f"{r['token_p99_us']:7.1f}µ {r['delta_median_us']:7.1f}µ {r['delta_p99_us']:7.1f}µ "
            f"{r['stmt_delta_median_us']:9.1f}µ {r['stmt_delta_p99_us']:9.1f}µ "
            f"{r['decl_delta_median_us']:9.1f}µ {r['decl_delta_p99_us']:9.1f}µ "
            f"{r['stream_mb_s']:6.2f}MB/s {r['bulk_mb_s']:6.2f}MB/s {r['long_token_mean_us']:9.2f}µ"
        )
    for key in ("ast", "codeop"):
        r = RESULTS[key]
        lines.append(
            f"{key:8} {'':9} {'':8} {'':8} {'':8} {'':8} {'':10} {'':10} {'':10} {'':10} "
            f"{'':10} {'':10} "
            f"{r['token_mean_us']:9.1f}µ (median {r['token_median_us']:.1f}µ)"
        )
    for key in ("native", "pure"):
        r = RESULTS.get(key)
        if r is not None:
            lines.append(
                f"{key} scanner alone: bulk {r['scan_bulk_mb_s']:.1f} MB/s, "
                f"3-5 char pieces {r['scan_stream_mb_s']:.1f} MB/s; "
                f"δ without the compile() confirmation: median {r['bare_delta_median_us']:.1f}µs, "
                f"p99 {r['bare_delta_p99_us']:.1f}µs (statements other than def/class: "
                f"median {r['bare_stmt_delta_median_us']:.1f}µs, "
                f"p99 {r['bare_stmt_delta_p99_us']:.1f}µs)"
            )
            if "llm_delta_median_us" in r:
                lines.append(
                    f"{key} in cl100k LLM tokens: per-token mean {r['llm_token_mean_us']:.2f}µs, "
                    f"δ median {r['llm_delta_median_us']:.1f}µs, "
                    f"p99 {r['llm_delta_p99_us']:.1f}µs; "
                    f"statements: median {r['llm_stmt_delta_median_us']:.1f}µs, "
                    f"p99 {r['llm_stmt_delta_p99_us']:.1f}µs; def/class: "
                    f"median {r['llm_decl_delta_median_us']:.1f}µs, "
                    f"p99 {r['llm_decl_delta_p99_us']:.1f}µs"
                )
    floor = RESULTS.get("floor")
    if floor is not None:
        text = (
            f"floor for any exact chunker (one compile() of a chunk whose text the deciding "
            f"piece itself completed): δ p99 >= {floor['pieces_p99_us']:.1f}µs in 3-5 char "
            f"pieces ({floor['pieces_over_200us']:.1%} of chunks above 200µs)"
        )
        if "llm_p99_us" in floor:
            text += (
                f", >= {floor['llm_p99_us']:.1f}µs in cl100k pieces "
                f"({floor['llm_over_200us']:.1%} above 200µs)"
            )
        lines.append(text)
    ref = RESULTS.get("native", RESULTS["pure"])
    name = "native" if "native" in RESULTS else "pure"
    long = ref["long_token_mean_us"]
    lines.append(
        f"ratios on {LONG}+ line files (mean per-token cost): "
        f"ast whole-buffer / {name} = {RESULTS['ast']['token_mean_us'] / long:.0f}x, "
        f"codeop / {name} = {RESULTS['codeop']['token_mean_us'] / long:.0f}x"
    )
    if "native" in RESULTS:
        p, n = RESULTS["pure"], RESULTS["native"]
        lines.append(
            f"pure / native: per-token mean {p['token_mean_us'] / n['token_mean_us']:.1f}x, "
            f"δ median {p['delta_median_us'] / n['delta_median_us']:.1f}x, "
            f"δ p99 {p['delta_p99_us'] / n['delta_p99_us']:.1f}x, "
            f"bulk throughput {n['bulk_mb_s'] / p['bulk_mb_s']:.1f}x, "
            f"scanner alone {n['scan_bulk_mb_s'] / p['scan_bulk_mb_s']:.1f}x bulk / "
            f"{n['scan_stream_mb_s'] / p['scan_stream_mb_s']:.1f}x in pieces"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
