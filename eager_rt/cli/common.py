"""Arguments every ``eager`` subcommand shares: which backend, with which options, what is shown."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eager_rt.cli.checks import UsageError, number, writable_dir
from eager_rt.executor import Backend
from eager_rt.registry import DEFAULT_BACKEND, available_backends, open_backend

__all__ = [
    "add_backend_arguments",
    "add_output_arguments",
    "backend_from_args",
    "check_output_arguments",
    "parse_option",
    "wants_live_view",
]


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it parses (numbers, booleans), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backend (where the code runs)")
    group.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help=f"where the code runs (default {DEFAULT_BACKEND}; registered: "
        f"{', '.join(available_backends())})",
    )
    group.add_argument(
        "-O",
        "--backend-option",
        dest="backend_options",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. -O image=python:3.12-slim, -O url=http://...)",
    )
    group.add_argument("--image", help="container image (shorthand for -O image=IMAGE)")
    group.add_argument("--url", help="remote service URL (shorthand for -O url=URL)")
    group.add_argument(
        "--exec-timeout",
        type=number(above=0.0),
        default=None,
        metavar="S",
        help="stop an execution that runs longer than S seconds; the run then fails there "
        "(default: the backend's own limit)",
    )


def backend_from_args(args: argparse.Namespace) -> Backend:
    options: dict[str, Any] = dict(args.backend_options)
    if args.image:
        options["image"] = args.image
    if args.url:
        options["url"] = args.url
    return open_backend(args.backend, **options)


def add_output_arguments(
    parser: argparse.ArgumentParser, *, plain: str, what: str
) -> argparse._ArgumentGroup:
    """--plain, --json, --json-images, --save-figures; ``plain`` is what plain output prints."""
    out = parser.add_argument_group("output")
    out.add_argument(
        "--plain",
        action="store_true",
        help=f"print {plain} as lines, not the live view (the default when stdout is not "
        "a terminal)",
    )
    out.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON object on stdout ({plain}: to stderr)",
    )
    out.add_argument(
        "--json-images",
        action="store_true",
        help="with --json: include each displayed image as a base64 MIME bundle",
    )
    out.add_argument(
        "--save-figures",
        type=Path,
        metavar="DIR",
        help=f"write each image the {what} displays to DIR as a numbered file (figure-001.png ...)",
    )
    return out


def check_output_arguments(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` for output options that cannot work, before any run."""
    if args.json_images and not args.json:
        raise UsageError("--json-images needs --json")
    if args.save_figures is not None:
        writable_dir(args.save_figures, "--save-figures")


def wants_live_view(args: argparse.Namespace) -> bool:
    """The live view, unless --json or --plain, or stdout is not a terminal."""
    return not (args.json or args.plain) and sys.stdout.isatty()
