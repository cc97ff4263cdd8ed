"""Arguments every ``eager`` subcommand shares: which backend, with which options."""

from __future__ import annotations

import argparse
import json
from typing import Any

from eager_rt.cli.checks import number
from eager_rt.executor import Backend
from eager_rt.registry import DEFAULT_BACKEND, available_backends, open_backend

__all__ = ["add_backend_arguments", "backend_from_args", "parse_option"]


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
