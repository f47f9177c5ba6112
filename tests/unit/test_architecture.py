"""The shape of the package (docs/architecture.md): no import cycle, no module over 600 lines,
no submodule that imports the package face, and a core that loads no command line.

Socket-free: it reads the source with :mod:`ast` and starts one interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import multicast

PACKAGE = Path(multicast.__file__).parent
SOURCE = PACKAGE.parent  # src/
FACE = "multicast"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` tests ``TYPE_CHECKING``: its imports never run."""
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
    return name == "TYPE_CHECKING"


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported (not those in functions,
    classes or ``if TYPE_CHECKING:`` blocks)."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            pending += node.orelse if is_type_checking(node.test) else node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
        elif isinstance(node, ast.With):
            pending += node.body


def imported_from(node: ast.ImportFrom, importer: str) -> str:
    """The absolute module name of a ``from ... import`` statement in ``importer``."""
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def targets(node: ast.Import | ast.ImportFrom, importer: str) -> set[str]:
    """The package's modules an import statement loads: a submodule where the imported name
    is one, else the module named (the package face for ``from multicast import name``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = imported_from(node, importer)
    found = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in MODULES:
            found.add(submodule)
        elif base in MODULES:
            found.add(base)
    return found


def imports_the_face(tree: ast.Module, importer: str) -> bool:
    """Whether a module imports the package face anywhere, even inside a function:
    ``import multicast``, ``from multicast import name`` (not a submodule) or
    ``importlib.import_module("multicast")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == FACE for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and FACE in targets(node, importer):
            return True
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == FACE
        ):
            return True
    return False


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the package's modules it imports; and the submodules importing the face."""
    graph: dict[str, set[str]] = {}
    face_importers = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set()
        for node in module_level_imports(tree):
            graph[name] |= targets(node, name)
        if name != FACE and imports_the_face(tree, name):
            graph[name].add(FACE)
            face_importers.append(name)
    return graph, face_importers


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing
    itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_the_graph_sees_the_imports() -> None:
    graph, _ = import_graph()
    assert "multicast.exceptions" in graph["multicast.core.addresses"]
    assert "multicast.defaults" in graph["multicast.skt"]  # `from multicast import defaults`
    assert graph[FACE] == set()  # the face imports only under TYPE_CHECKING, or on first use
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}) == [
        ["a", "b", "c"],
        ["d"],
    ]


def test_no_submodule_imports_the_package_face() -> None:
    _, face_importers = import_graph()
    assert face_importers == [], "read multicast.defaults (or the submodule) instead"


def test_the_import_graph_has_no_cycle() -> None:
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_module_is_over_600_lines() -> None:
    """Nor any C file of the extension."""
    lengths = {
        str(path.relative_to(SOURCE)): len(path.read_text().splitlines())
        for pattern in ("*.py", "*.c", "*.h")
        for path in sorted(SOURCE.rglob(pattern))
    }
    assert {path: lines for path, lines in lengths.items() if lines > MAX_LINES} == {}


def test_the_core_loads_no_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import multicast.core"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "multicast.core" in loaded
    assert loaded & {"argparse", "socketserver"} == set()
