"""The plan of the tree, checked from the code's own imports (ARCHITECTURE.md draws it in words).

Every import counts, including those inside functions: a lazy import that runs back up is still a
tie that makes the rooms hard to read and easy to turn into a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# core's floors, lowest first. A module may import its own room and any lower floor, never a higher one.
FLOORS = [
    {"core.config", "core.errors", "core.files", "core.devices", "core.present"},
    {"core.run"},
    {"core.models"},
    {"core.data"},
    {"core.insight"},
    {"core.training"},
    {"core.service"},
    {"core.plan"},
    {"core.__main__"},
]
HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate", "trl")


def python_files(*folders: str) -> list[Path]:
    """The project's own Python files under these folders (no virtual environment, no run output)."""
    found: list[Path] = []
    for folder in folders:
        base = ROOT / folder
        found += [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
    return found


def module_name(path: Path) -> str:
    """'core/training/engine.py' -> 'core.training.engine' (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) for every import in a file, at any depth; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield node.lineno, module, [alias.name for alias in node.names]


def project_modules() -> set[str]:
    return {module_name(path) for path in python_files("core", "ui", "pages", "bench", "app.py")}


def imported_module(module: str, name: str, known: set[str]) -> str:
    """`from core.training import engine` imports the module core.training.engine, not the package."""
    candidate = f"{module}.{name}"
    return candidate if candidate in known else module


def floor_of(module: str) -> int | None:
    if module == "core":  # the package itself: an empty __init__
        return 0
    for number, rooms in enumerate(FLOORS):
        if any(module == room or module.startswith(room + ".") for room in rooms):
            return number
    return None


def room_of(module: str) -> str:
    for rooms in FLOORS:
        for room in rooms:
            if module == room or module.startswith(room + "."):
                return room
    return module


def test_no_module_imports_a_private_name_of_another():
    known = project_modules()
    found = []
    for path in python_files("core", "ui", "pages", "bench", "app.py"):
        for line, module, names in imports(path):
            if module.split(".")[0] not in ("core", "ui", "pages", "bench"):
                continue
            for name in names:
                target = imported_module(module, name, known)
                if name.startswith("_") and target != module_name(path):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {module}")
    assert not found, "\n".join(found)


def test_core_imports_run_down_the_floors_only():
    known = project_modules()
    found = []
    for path in python_files("core"):
        me = module_name(path)
        my_floor = floor_of(me)
        assert my_floor is not None, f"{me} is on no floor: add its room to FLOORS and ARCHITECTURE.md"
        for line, module, names in imports(path):
            if module.split(".")[0] in ("ui", "pages", "streamlit", "bench"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module} (core never imports them)")
                continue
            if not module.startswith("core"):
                continue
            for target in {imported_module(module, name, known) for name in names} or {module}:
                floor = floor_of(target)
                if floor is not None and floor > my_floor:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {target}, a floor above {room_of(me)}")
    assert not found, "\n".join(found)


def test_no_import_circles_between_modules():
    """Strongly connected components of the module graph (every import, lazy ones included)."""
    known = project_modules()
    graph: dict[str, set[str]] = {}
    for path in python_files("core", "ui", "pages", "app.py"):
        me = module_name(path)
        edges = graph.setdefault(me, set())
        for _, module, names in imports(path):
            for target in {imported_module(module, name, known) for name in names} or {module}:
                if target in known and target != me:
                    edges.add(target)
    # A package's __init__ that re-exports its submodules is a facade, not a tie back from them.
    for package in [m for m in graph if any(other.startswith(m + ".") for other in graph)]:
        graph[package] = {t for t in graph[package] if not t.startswith(package + ".")}
    circles = [sorted(component) for component in strongly_connected(graph) if len(component) > 1]
    assert not circles, f"import circles: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion depth is not ours to spend)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_pages_and_ui_never_import_ml_libraries():
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in python_files("pages", "ui", "app.py")
             for line, module, _ in imports(path) if module.split(".")[0] in HEAVY]
    assert not found, "\n".join(found)


def test_only_core_models_loads_pretrained_weights():
    found = []
    for path in python_files("core", "ui", "pages"):
        if module_name(path).startswith("core.models"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "from_pretrained":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "from_pretrained outside core/models: " + ", ".join(found)


@pytest.mark.parametrize("folder", ["core", "ui", "pages"])
def test_files_stay_readable_in_length(folder):
    """Under ~500 lines, unless the file's opening docstring says why it is longer (`Longer than...`)."""
    long = []
    for path in python_files(folder):
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 520 and "Longer than" not in docstring:
            long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, "split these or say why not at their top: " + ", ".join(long)
