"""The ``eager`` command line: replay a script as a model would stream it, or chat with one.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``;
the handler it registers returns the process exit code (0 ok, 1 the code
failed, 2 a usage error).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: eager {run,chat} ...

  eager run SCRIPT     replay a script as a model would stream it, and run it while it streams
  eager chat PROMPT    ask a model for Python, and run it while the model writes it

eager run --help and eager chat --help describe every option.
"""


def build_parser() -> argparse.ArgumentParser:
    from eager_rt import __version__
    from eager_rt.cli import chat, run

    parser = argparse.ArgumentParser(
        prog="eager",
        description="Run LLM-generated Python while the model is still writing it.",
    )
    parser.add_argument(
        "--version", action="version", version=f"eager_rt {__version__}", help="print the version"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{run,chat}")
    run.add_parser(subparsers)
    chat.add_parser(subparsers)
    return parser


def _escape_unencodable() -> None:
    """Text the code printed that the terminal cannot encode (a lone surrogate) is escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # it cannot change its handler
                reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        sys.stderr.write(USAGE)
        return 2
    args = build_parser().parse_args(arguments)
    _escape_unencodable()
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("eager: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
