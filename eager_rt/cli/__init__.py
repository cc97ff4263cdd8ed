"""The ``eager`` command line: replay a script as a model would stream it, or chat with one.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``;
the handler it registers returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from eager_rt.cli import chat, run

    parser = argparse.ArgumentParser(
        prog="eager",
        description="Run LLM-generated Python while the model is still writing it.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    run.add_parser(subparsers)
    chat.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("eager: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
