"""The import graph of livetx/ has no cycle.

Every `import` statement counts wherever it stands: at module level, under `if TYPE_CHECKING:`
(mypy follows those, and a cycle there is one a refactor turns into a runtime cycle), and
inside functions (a deferred import hides a cycle rather than removing it). Importing
`a.b.c` also runs the `__init__` of `a` and `a.b`, so those are edges too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "livetx"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)] if node.level else []
    parent = ".".join([*base, *([node.module] if node.module else [])])
    return [parent] + [f"{parent}.{alias.name}" for alias in node.names]  # `from pkg import module`


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in imported(node, module, path.name == "__init__.py"):
                    parts = name.split(".")
                    targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # with the packages
        graph[module] = {target for target in targets if target in files and target != module}
    return graph


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "livetx.web.middleware" in graph and "livetx.web.keys" in graph["livetx.web.middleware"]
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_cli_factories_need_no_web_app() -> None:
    """`livetx url|sign|probe` build what they need from livetx/factories.py: importing it (and
    the CLI) loads neither livetx/app.py nor aiohttp's web server."""
    code = "import sys, livetx.__main__, livetx.factories; print(sorted(m for m in sys.modules if m in ('livetx.app', 'aiohttp.web')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent, timeout=60)
    assert loaded.stdout.strip() == "[]"
