"""Griffe extension: the docstrings' Sphinx roles become links in the API reference.

The package's docstrings are reStructuredText-flavoured (``:class:`~eager_rt.result.RunResult```,
``:mod:`._bwrap```), which mkdocstrings renders as Markdown, where a role is
plain text. This rewrites each role into an *optional* mkdocs-autorefs
reference: a link when the target is documented on the site, its name in code
otherwise (a private module, another library), so a docstring never breaks the
build. It runs once the package is loaded whole, so a class's members are
known when its docstring names them. Relative targets are resolved as Sphinx
does: ``.x`` against the module's package, a bare name against the enclosing
class, then the module.
A paragraph ending in ``::`` (a literal block follows) ends in ``:``, and a
line holding only ``::`` goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from typing import Any

from griffe import Alias, Extension, Module, Object

_ROLE = re.compile(r":(?:py:)?(mod|class|func|meth|attr|data|exc|obj|const):`([^`]+)`")
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")
_LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
_LITERAL_MARKER = re.compile(r"^[ \t]*::[ \t]*$", re.MULTILINE)


def _member_path(obj: Object, name: str) -> str | None:
    """Where ``name``, as the module of ``obj`` sees it, is defined (imports followed)."""
    member = obj.module.members.get(name)
    if member is None:
        return None
    return member.target_path if isinstance(member, Alias) else member.path


def _resolve(target: str, obj: Object) -> str:
    module = obj.module
    if target.startswith("."):
        dots = len(target) - len(target.lstrip("."))
        package = module.path if module.is_init_module else module.path.rpartition(".")[0]
        for _ in range(dots - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{target[dots:]}"
    first, _, rest = target.partition(".")
    holder = obj if obj.is_class else obj.parent
    if not rest and holder is not None and holder.is_class and first in holder.members:
        return f"{holder.path}.{first}"
    found = _member_path(obj, first)
    if found is not None:
        return f"{found}.{rest}" if rest else found
    return target if rest else f"{module.path}.{target}"


def _render(match: re.Match[str], obj: Object) -> str:
    role, text = match.group(1), match.group(2).strip()
    titled = _TITLED.match(text)
    if titled:
        title, target = titled.group("title"), titled.group("target")
    else:
        target = text.lstrip("~!")
        title = target.rsplit(".", 1)[-1] if text.startswith("~") else target.lstrip(".")
    if role in {"func", "meth"} and not title.endswith(")"):
        title += "()"
    code = f"<code>{escape(title)}</code>"
    if text.startswith("!"):
        return code
    identifier = escape(_resolve(target, obj), quote=True)
    return f'<autoref identifier="{identifier}" optional>{code}</autoref>'


def rewrite(text: str, obj: Object) -> str:
    """The docstring ``text`` of ``obj`` with its roles as optional cross-references."""
    text = _ROLE.sub(lambda m: _render(m, obj), text)
    return _LITERAL_MARKER.sub("", _LITERAL_BLOCK.sub(":", text))


def _objects(obj: Object) -> Iterator[Object]:
    yield obj
    for member in obj.members.values():
        if not isinstance(member, Alias):
            yield from _objects(member)


class SphinxRoles(Extension):
    """Rewrite Sphinx roles in every docstring of a package, once it is loaded whole."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
