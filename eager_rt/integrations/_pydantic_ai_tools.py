"""The agent's pydantic-ai tools as eager_rt host tools, for the ``run_code`` sandbox.

pydantic-ai describes a tool by a JSON schema and runs it through its
``ToolManager`` (argument validation, retries, capability hooks). The sandbox
needs a Python function with a signature (eager_rt writes a stub from it). This
module turns one into the other: :func:`signature_of` reads the schema's
properties into an :class:`inspect.Signature`, :func:`bridge` makes an async
eager_rt :class:`~eager_rt.tools.Tool` whose calls go back through pydantic-ai,
and :func:`render` writes the signatures the model reads in the tool
description. Used by :mod:`eager_rt.integrations.pydantic_ai` only.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic_ai.tools import ToolDefinition

from eager_rt.integrations._signatures import OMITTED, given, python_name
from eager_rt.tools import DEFAULT_TOOL_TIMEOUT, Tool

__all__ = ["bridge", "render", "signature_of"]

#: calls the pydantic-ai tool ``name`` with JSON arguments; returns a JSON-ready value
Dispatch = Callable[[str, dict[str, Any]], Awaitable[Any]]

_JSON_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "null": "None",
}


def _usable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def signature_of(tool_def: ToolDefinition) -> inspect.Signature:
    """Required properties positional-or-keyword in schema order, optional ones keyword-only.

    An optional property keeps its JSON default when it has one; otherwise the
    stub leaves it out and pydantic-ai applies the tool's own default. A schema
    whose property names are not identifiers takes ``**kwargs``.
    """
    schema = tool_def.parameters_json_schema or {}
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    if not all(_usable(name) for name in props):
        kwargs = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
        return inspect.Signature([kwargs])
    params = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in props
        if name in required
    ]
    for name, spec in props.items():
        if name in required:
            continue
        default = spec.get("default", OMITTED) if isinstance(spec, Mapping) else OMITTED
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


def bridge(
    tool_def: ToolDefinition,
    dispatch: Dispatch,
    *,
    read_only: bool,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,
) -> Tool:
    """An async eager_rt tool that calls the pydantic-ai tool through ``dispatch``.

    A tool pydantic-ai runs only once approved (``requires_approval=True``)
    asks eager_rt's ``approve=`` callback before each call.
    """
    signature = signature_of(tool_def)
    original = tool_def.name

    async def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        # pydantic's validate_call (in ToolHost) may pass the placeholder default on
        arguments = given(bound.arguments)
        extra = arguments.pop("kwargs", None) if "kwargs" in signature.parameters else None
        if isinstance(extra, dict):
            arguments.update(extra)
        return await dispatch(original, arguments)

    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__name__ = python_name(original)
    call.__qualname__ = call.__name__
    call.__doc__ = tool_def.description or None
    approval = tool_def.kind == "unapproved"
    return Tool(
        call, call.__name__, read_only=read_only and not approval, timeout=timeout,
        requires_approval=approval,
    )  # fmt: skip


def _type_text(spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return "Any"
    kind = spec.get("type")
    if isinstance(kind, list):
        return " | ".join(_JSON_TYPES.get(k, "Any") for k in kind)
    if isinstance(kind, str):
        if kind == "array" and isinstance(spec.get("items"), Mapping):
            return f"list[{_type_text(spec['items'])}]"
        return _JSON_TYPES.get(kind, "Any")
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        return " | ".join(_type_text(o) for o in options)
    if "enum" in spec:
        return "Literal[" + ", ".join(repr(v) for v in spec["enum"]) + "]"
    return "Any"


def render(tool: Tool, tool_def: ToolDefinition) -> str:
    """``async def f(city: str, *, unit: str = 'C') -> Any:`` and its docstring, for the model."""
    props: Mapping[str, Any] = (tool_def.parameters_json_schema or {}).get("properties") or {}
    shown: list[str] = []
    star = False
    for p in tool.signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            shown.append("**kwargs")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            shown.append("*")
            star = True
        text = f"{p.name}: {_type_text(props.get(p.name))}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        shown.append(text)
    head = f"async def {tool.name}({', '.join(shown)}) -> Any:"
    doc = (tool_def.description or "").strip()
    if not doc:
        return head + "\n    ..."
    body = "\n".join("    " + line if line else "" for line in doc.splitlines())
    return f'{head}\n    """\n{body}\n    """'
