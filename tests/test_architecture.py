"""The rules of ``docs/architecture.md``, read from the code (issue 16).

Imports go down the layers (imports inside functions counted), no import cycle between modules,
no function over 80 lines, a CLI that never branches on ``--server``, one writer module per table,
and the module map in ``docs/architecture.md`` that names every package with its layer."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

import batchscore

SRC = Path(batchscore.__file__).resolve().parent
DOC = SRC.parents[1] / "docs" / "architecture.md"

# Each top-level package or module of src/batchscore, with its layer: an import may go to the same
# layer (without a cycle) or a lower one, never a higher one. The package's own __init__ and
# __main__ (the public facade and ``python -m batchscore``) sit above everything.
LAYERS: dict[str, int] = {
    # 0: the foundation, which knows no job and no domain
    "errors": 0, "redact": 0, "paths": 0, "config": 0, "jsonshape": 0, "crash": 0, "tlsconfig": 0,
    "secrets": 0, "storage": 0, "io": 0, "state": 0, "workspace": 0, "telemetry": 0,
    # 1: the engine
    "jobs": 1,
    # 2: what the domains share: the registry, the connections, the model runtimes, Azure ML formats
    "registry": 2, "connections": 2, "models": 2, "azureml": 2,
    # 3: the domains with their job kinds
    "video": 3, "tabular": 3, "serving": 3,
    # 4: the domains built on those
    "endpoints": 4, "mlops": 4,
    # 5, 6: the pipeline catalog and run lifecycle; what starts runs (triggers, stream landings)
    "pipelines": 5, "triggers": 6, "streaming": 6,
    # 7-9: the callers: the typed client of /api/v1, the CLI's backends (local | remote), the
    # service, the CLI
    "client": 7, "apimodels": 7, "backend": 8, "service": 8, "cli": 9,
}
# A module that sits lower than its package (a contract that the layers below implement):
# the most specific name wins.
LAYERS_OF_MODULES: dict[str, int] = {
    # what the domains import to define their published pipelines: the contract, and the paths
    # of the data store
    "pipelines.contract": 1, "pipelines.datastore": 0,
}
FACADE = {"batchscore", "batchscore.__main__"}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("batchscore", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _known(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> set[str]:
    """Every batchscore module ``name`` imports, at the top or inside a function."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(TREES[name]):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            if target.startswith("batchscore"):
                known = _known(target)
                if known and known != name:
                    found.add(known)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(name: str) -> int | None:
    if name in FACADE:
        return None
    short = name.removeprefix("batchscore.")
    while short:
        if short in LAYERS_OF_MODULES:
            return LAYERS_OF_MODULES[short]
        short = short.rpartition(".")[0]
    return LAYERS.get(_top(name))


def test_every_package_has_a_layer() -> None:
    missing = sorted({_top(n) for n in MODULES if n not in FACADE and _top(n) not in LAYERS})
    assert not missing, f"packages without a layer in LAYERS (and docs/architecture.md): {missing}"


def test_imports_go_down_the_layers() -> None:
    upward = []
    for name, targets in GRAPH.items():
        here = _layer(name)
        for target in targets:
            there = _layer(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{name} (layer {here}) imports {target} (layer {there})")
            if there is None and here is not None:
                upward.append(f"{name} imports the facade {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative
        nonlocal counter
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles()
    assert not cycles, "import cycles (imports inside functions counted):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_no_function_over_80_lines() -> None:
    long = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, "functions over 80 lines:\n" + "\n".join(sorted(long))


_SERVER_TEST = re.compile(r"\bif\s+(not\s+)?server\b|\bserver\s+is\s+(not\s+)?None\b"
                          r"|\bif\b[^:\n]*\bserver\s+(and|or)\b|\belse\s+server\b")


def test_the_cli_never_branches_on_server() -> None:
    found = []
    for path in sorted((SRC / "cli").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _SERVER_TEST.search(line.split("#")[0]):
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, "the CLI tests --server itself (a backend must):\n" + "\n".join(found)


def _table_names() -> set[str]:
    tree = TREES["batchscore.state.tables"]
    names = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "Table"):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _writes(tree: ast.AST, tables: set[str]) -> set[str]:
    """Tables written by a module: ``insert(t)``, ``update(t)``, ``delete(t)``, ``t.insert()``..."""
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        verb = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if verb not in ("insert", "update", "delete"):
            continue
        subject = node.args[0] if node.args and isinstance(func, ast.Name) else (
            func.value if isinstance(func, ast.Attribute) else None)
        while isinstance(subject, ast.Attribute):  # tables.jobs
            if subject.attr in tables:
                break
            subject = subject.value
        name = subject.attr if isinstance(subject, ast.Attribute) else getattr(subject, "id", "")
        if name in tables:
            out.add(name)
    return out


def test_every_table_has_one_writer_module() -> None:
    tables = _table_names()
    assert {"jobs", "pipeline_runs", "endpoints"} <= tables
    writers: dict[str, set[str]] = defaultdict(set)
    for name, tree in TREES.items():
        if ".migrations." in name:
            continue
        for table in _writes(tree, tables):
            writers[table].add(name)
    shared = {t: sorted(w) for t, w in writers.items() if len(w) > 1}
    assert not shared, f"tables written from more than one module: {shared}"


def test_the_module_map_names_every_package_with_its_layer() -> None:
    text = DOC.read_text()
    rows = dict(re.findall(r"^\|\s*`([a-z_]+)(?:/|\.py)`\s*\|\s*(\d+)\s*\|", text, re.M))
    documented = {name: int(layer) for name, layer in rows.items()}
    present = {_top(n) for n in MODULES if n not in FACADE}
    assert documented == {name: LAYERS[name] for name in present}, (
        "docs/architecture.md's module map must list every package of src/batchscore with its "
        "layer as tests/test_architecture.py's LAYERS has it")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_the_layer_map_has_no_stale_entry(name: str) -> None:
    assert any(_top(n) == name for n in MODULES), f"LAYERS names {name}, which does not exist"
