"""``python -m tests.fake_llm [--tps N]``: ``eager chat`` against the fake model, with figures.

Streams the same analysis twice through the real OpenAI client and the local
backend, paced at ``--tps`` tokens per second: once error-free, once with a
failing third statement. It prints, for each, the run's timings and how much of
the stream the server never had to send, the figure early interruption is for.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

from eager_rt.cli import main as eager_main
from eager_rt.sources.replay import tokenize_pieces
from tests.fake_llm import FakeLLM, Faults, Reply

HEAD = "import statistics\ndata = [3, 1, 4, 1, 5, 9, 2, 6]\nprint('mean', statistics.mean(data))\n"
TAIL = "".join(f"print('step {i}', sum(data) * {i})\n" for i in range(40))
PROGRAMS = {"ok": HEAD + TAIL, "error": HEAD + "ratio = data[0] / (data[1] - 1)\n" + TAIL}


def measure(name: str, code: str, tps: float) -> str:
    tokens = ["Here is the analysis.\n```python\n", *tokenize_pieces(code), "```\nDone.\n"]
    with FakeLLM(Reply(text=tokens), Faults(interval=1.0 / tps)) as llm:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            eager_main(["chat", "--provider", "openai", "--base-url", llm.openai_url,
                        "--model", "fake", "--json", "--max-tokens", "1000", "analyse"])
        payload = json.loads(out.getvalue())
        log = llm.wait_done(0)
    run = payload["runs"][0]
    saved = payload["tokens_not_generated"]
    return (
        f"{name:<6} {run['status']:<7} tokens {len(tokens):>4}  gen {run['gen_s']:6.2f}s  "
        f"exec {run['exec_s']:.3f}s  after-gen {run['nel_s']:.3f}s  e2e {run['e2el_s']:6.2f}s  "
        f"events sent {log.events_sent}/{log.events_total}  "
        f"closed early {saved['stream_closed_early']}, <= {saved['at_most']} tokens not generated"
    )


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_llm")
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second (50)")
    args = parser.parse_args()
    for name, code in PROGRAMS.items():
        print(measure(name, code, args.tps))


if __name__ == "__main__":
    run()
