"""The rules of docs/ARCHITECTURE.md that code can check: packages by role in layers, imports only
downwards (never from a higher layer, never sideways between packages of one layer), no import
cycles between modules, no process-global device, and the size limits (functions ~60 lines,
modules ~400 lines, outside ``algorithms/``)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pseudolabel"

LAYERS = [
    ("core",),
    ("catalog", "algorithms", "models"),
    ("store",),
    ("stages",),
    ("runner",),
    ("export",),
    ("evaluation",),
    ("report",),
    ("app",),
    ("cli",),
]
"""Packages by role, lowest first; a module imports from its own package or from a lower layer."""
LAYER = {package: n for n, packages in enumerate(LAYERS) for package in packages}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """Every module of the package that ``name`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pseudolabel")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pseudolabel"):
                submodules = {f"{target}.{a.name}" for a in node.names} & set(modules())
                found |= submodules if len(submodules) == len(node.names) else {target} | submodules
    known = modules()
    return {t for t in found if t in known and t != name}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYER else None


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - {"pipelines"} == set(LAYER), "a package without a layer: add it to LAYERS and ARCHITECTURE.md"
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules at the package root belong in a package by role: {loose}"


def test_imports_only_go_down():
    wrong = []
    for name, path in modules().items():
        own = package_of(name)
        if own is None:
            continue
        for target in imports(name, path):
            other = package_of(target)
            if other is None or other == own:
                continue
            if LAYER[other] >= LAYER[own]:
                wrong.append(f"{name} imports {target} ({other} is not below {own})")
    assert wrong == []


def test_no_import_cycles():
    graph = {name: imports(name, path) for name, path in modules().items()}
    # the one cycle click needs: cli/__init__ registers its command modules, which import its group
    graph = {n: {t for t in ts if not (t == "pseudolabel.cli" and n.startswith("pseudolabel.cli."))}
             for n, ts in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for t in sorted(graph.get(node, ())):
            visit(t)
        stack.pop()
    for node in sorted(graph):
        visit(node)
    assert cycles == []


def test_stages_never_import_each_other():
    wrong = []
    for name, path in modules().items():
        if name.startswith("pseudolabel.stages.") and name not in ("pseudolabel.stages.base",):
            for target in imports(name, path):
                if target.startswith("pseudolabel.stages.") and target != "pseudolabel.stages.base":
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_readers_of_stores_never_import_a_stage():
    """Exports, evaluation and the report read what stages wrote, through the store."""
    wrong = [f"{name} imports {target}" for name, path in modules().items()
             if package_of(name) in ("export", "evaluation", "report", "store")
             for target in imports(name, path) if target.startswith("pseudolabel.stages")]
    assert wrong == []


def test_no_process_global_device():
    """The device is an argument (``StageContext``), never a module-level setting to set and read."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert not names & {"use", "current", "set_device", "get_device"}, path
    assert "global" not in (PACKAGE / "models" / "device.py").read_text()


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("limit", ["functions", "modules"])
def test_sizes_outside_algorithms(limit):
    paths = [p for p in sorted(PACKAGE.rglob("*.py")) if "algorithms" not in p.parts]
    if limit == "functions":
        assert [f for p in paths for f in _long_functions(p)] == []
    else:
        lines = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines()) for p in paths}
        assert {p: n for p, n in lines.items() if n > MAX_MODULE_LINES} == {}
