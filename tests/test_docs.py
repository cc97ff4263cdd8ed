"""The documentation: README stays short, every page is reachable, the site builds strictly.

The site (mkdocs.yml, docs/) is built by scripts/build-docs.sh in strict mode,
so a broken link, a missing anchor, a page outside the navigation or an API
reference naming a missing object fails the build; these tests run that build
and prove that it does fail on a broken reference.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.provision import unavailable

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BUILD = ROOT / "scripts" / "build-docs.sh"
README_MAX_LINES = 200


def _nav_pages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _config() -> dict[str, Any]:
    if importlib.util.find_spec("yaml") is None:  # PyYAML comes with mkdocs
        unavailable(
            "the documentation's config", "PyYAML is not installed", "EAGER_RT_REQUIRE_DOCS"
        )
    import yaml

    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return config


def _require_mkdocs() -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        unavailable(
            "the documentation build",
            f"not installed: {', '.join(missing)}",
            "EAGER_RT_REQUIRE_DOCS",
        )


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_readme_is_under_200_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_keeps_the_quickstart_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make demo\b", readme, re.MULTILINE)
    assert re.search(r"^make test\b", readme, re.MULTILINE)


def test_readme_links_point_at_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "README links to no page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists() -> None:
    nav = _nav_pages(_config()["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == sorted(nav), "a page is in the nav twice"
    assert not set(pages) - set(nav), f"pages not in the nav: {sorted(set(pages) - set(nav))}"
    assert not set(nav) - set(pages), f"nav entries with no page: {sorted(set(nav) - set(pages))}"


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    _require_mkdocs()
    site = tmp_path / "site"
    trees = set(Path(tempfile.gettempdir()).glob("eager-rt-docs-*"))
    done = _build("--site-dir", str(site))
    assert done.returncode == 0, done.stdout + done.stderr
    # The hook's tree of links (eager_rt.backends laid out for griffe) is gone.
    assert set(Path(tempfile.gettempdir()).glob("eager-rt-docs-*")) <= trees
    # The API reference was generated, eager_rt.backends (installed from backends/) included.
    backends = (site / "reference" / "backends" / "index.html").read_text(encoding="utf-8")
    assert 'id="eager_rt.backends.local.LocalBackend"' in backends
    runtime = (site / "reference" / "runtime" / "index.html").read_text(encoding="utf-8")
    assert 'id="eager_rt.runtime.arun_stream"' in runtime


@pytest.mark.parametrize(
    ("broken", "messages"),
    [
        (
            "[a page](no-such-page.md)\n\n[an anchor](usage.md#no-such-section)\n",
            [
                "contains a link 'no-such-page.md'",
                "does not contain an anchor '#no-such-section'",
                "orphan.md",  # a page left out of the nav
            ],
        ),
        ("::: eager_rt.runtime.no_such_function\n", ["no_such_function could not be found"]),
    ],
    ids=["links-anchors-nav", "api-reference"],
)
def test_the_strict_build_fails_on_a_broken_reference(
    tmp_path: Path, broken: str, messages: list[str]
) -> None:
    _require_mkdocs()
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    index = docs / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + f"\n{broken}", encoding="utf-8")
    (docs / "orphan.md").write_text("# A page nobody links\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        f"hooks: [{ROOT / 'scripts' / 'mkdocs_hooks.py'}]\n",
        encoding="utf-8",
    )
    done = _build("--config-file", str(config), "--site-dir", str(tmp_path / "site"))
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"the build passed with {broken!r} in a page"
    for message in messages:
        assert message in output, f"{message!r} not reported:\n{output}"


def test_sphinx_roles_in_docstrings_become_optional_cross_references() -> None:
    _require_mkdocs()  # griffe comes with mkdocstrings
    import griffe

    roles = griffe.load_extensions(f"{ROOT / 'scripts' / 'griffe_sphinx_roles.py'}:SphinxRoles")
    modules = {
        "__init__.py": '"""See :class:`~pkg.mod.Thing`, :mod:`.mod` and :func:`!gone`."""',
        "other.py": "class Helper: ...",
        "lit.py": '"""An example.\n\n::\n\n    x = 1\n"""',
        "mod.py": (
            "from pkg.other import Helper\n"
            "class Thing:\n"
            '    """:meth:`run` it; :class:`Helper`, :class:`asyncio.Task`.\n\n'
            "    Declare it::\n\n"
            "        x = 1\n"
            '    """\n'
            "    def run(self) -> None: ...\n"
        ),
    }
    with griffe.temporary_visited_package("pkg", modules, extensions=roles) as pkg:
        assert pkg.docstring.value == (
            'See <autoref identifier="pkg.mod.Thing" optional><code>Thing</code></autoref>, '
            '<autoref identifier="pkg.mod" optional><code>mod</code></autoref> '
            "and <code>gone()</code>."
        )
        assert pkg["mod.Thing"].docstring.value == (
            '<autoref identifier="pkg.mod.Thing.run" optional><code>run()</code></autoref> it; '
            '<autoref identifier="pkg.other.Helper" optional><code>Helper</code></autoref>, '
            '<autoref identifier="asyncio.Task" optional><code>asyncio.Task</code></autoref>.'
            "\n\nDeclare it:\n\n    x = 1"
        )
        assert pkg["lit"].docstring.value == "An example.\n\n\n\n    x = 1"
