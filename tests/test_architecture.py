"""The package's shape, as docs/architecture.md draws it: layers that import only downwards, no import circle, and
every name the README, the docs and the notebooks import still importable from the path they use."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "explorer"
# lowest first: a module may import its own layer and the ones before it, never one after
LAYERS = ("engine", "metrics", "live", "widgets", "paper", "entry points")
ENTRY_POINTS = {"explorer", "explorer.__main__", "explorer.cli"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    if module in ENTRY_POINTS:
        return LAYERS.index("entry points")
    folder = module.split(".")[1]
    return LAYERS.index(folder) if folder in LAYERS else LAYERS.index("engine")


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The explorer modules ``path`` imports when it runs (at import time or in a function), leaving out imports
    made for type checkers only."""
    tree = ast.parse(path.read_text())
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from explorer.paper import figures` imports the module explorer.paper.figures
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                      for alias in node.names}
    return {name for name in found if name in modules}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module of the package under ``root`` -> the package's modules it imports."""
    paths = {module_name(path, root): path for path in (root / "explorer").rglob("*.py")}
    return {name: runtime_imports(path, set(paths)) - {name} for name, path in paths.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} ({LAYERS[layer(module)]}) imports {target} ({LAYERS[layer(target)]})"
                  for module, targets in graph.items() for target in targets if layer(target) > layer(module))


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph (its modules, the first repeated at the end), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            if found := visit(target, [*path, module]):
                return found
        done.add(module)
        return None

    return next(filter(None, (visit(module, []) for module in sorted(graph))), None)


def test_no_module_imports_a_higher_layer():
    upward = upward_imports(import_graph())
    assert not upward, "\n".join(upward)


def test_there_is_no_import_circle():
    circle = import_circle(import_graph())
    assert circle is None, " -> ".join(circle)


def test_the_checks_find_a_planted_circle_and_upward_import(tmp_path):
    package = tmp_path / "explorer"
    (package / "live").mkdir(parents=True)
    for init in (package / "__init__.py", package / "live" / "__init__.py"):
        init.write_text("")
    (package / "priors.py").write_text("def f():\n    from explorer.live import owner\n")
    (package / "live" / "owner.py").write_text("from typing import TYPE_CHECKING\nfrom explorer import priors\n"
                                               "if TYPE_CHECKING:\n    from explorer import cli\n")
    graph = import_graph(tmp_path)
    assert graph["explorer.priors"] == {"explorer.live.owner"} and graph["explorer.live.owner"] == {"explorer.priors"}
    assert upward_imports(graph) == ["explorer.priors (engine) imports explorer.live.owner (live)"]
    assert import_circle(graph) == ["explorer.live.owner", "explorer.priors", "explorer.live.owner"]


def test_no_class_is_over_250_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250]
    assert not long, long


def code_blocks() -> dict[str, str]:
    """Python the user reads: the README's and docs' python blocks and the notebooks' code cells."""
    blocks = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            blocks[f"{path.name} block {k}"] = block
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for k, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                blocks[f"{path.name} cell {k}"] = "\n".join(line for line in source.splitlines()
                                                            if not line.lstrip().startswith(("%", "!")))
    return blocks


def public_imports() -> set[tuple[str, str | None]]:
    """(module, name) of every ``from explorer... import name`` and (module, None) of every ``import explorer...``."""
    found = set()
    for block in code_blocks().values():
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "explorer":
                found |= {(node.module, alias.name) for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "explorer"}
    return found


def test_every_name_the_readme_docs_and_notebooks_import_is_there():
    names = public_imports()
    assert ("explorer.training", "TrainConfig") in names and ("explorer.paper", "figures") in names  # parsed
    missing = []
    for module, name in sorted(names, key=str):
        try:
            imported = importlib.import_module(module)
            if name is not None and not hasattr(imported, name):
                importlib.import_module(f"{module}.{name}")
        except ImportError as error:
            missing.append(f"from {module} import {name}: {error}")
    assert not missing, missing


def test_the_readme_stays_a_users_path_under_20000_characters():
    """The long reproduction tables live in docs/reproduction.md; the README keeps what a new user reads first."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme) < 20_000
    assert "docs/reproduction.md" in readme and "docs/architecture.md" in readme
