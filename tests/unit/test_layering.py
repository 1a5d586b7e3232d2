"""The package layering stays true: lower layers never import the trainer (or models).

``passes`` (SampleBatch, run_pass) sits below both the trainer and ``resharding``, whose
weight-sync check runs the trainer's passes; ``distributed`` is below everything."""

import ast
from pathlib import Path

import pytest

import prime_megatron

ROOT = Path(prime_megatron.__file__).parent
NEVER_TRAINER = (
    "algo", "kernels", "rewards", "data", "rollout", "checkpoint", "evidence", "distributed",
    "passes", "resharding",
)  # fmt: skip
NEVER_MODELS = ("algo", "kernels", "distributed")


def imported_modules(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


@pytest.mark.parametrize("package", NEVER_TRAINER)
def test_lower_layers_do_not_import_the_trainer(package):
    bad = sorted(m for m in imported_modules(package) if m.startswith("prime_megatron.trainer"))
    assert not bad, f"prime_megatron/{package} imports {bad}"


@pytest.mark.parametrize("package", NEVER_MODELS)
def test_math_and_kernels_do_not_import_models(package):
    bad = sorted(m for m in imported_modules(package) if m.startswith("prime_megatron.models"))
    assert not bad, f"prime_megatron/{package} imports {bad}"


def test_the_walker_sees_imports():
    assert "prime_megatron.trainer.update" in imported_modules("trainer")


def _module_imports() -> dict[str, set[str]]:
    """Each package module -> the package modules it imports (anywhere in it)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("prime_megatron", *path.relative_to(ROOT).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        graph[name] = [
            node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
        ]  # fmt: skip
    return {module: _targets(nodes, graph) - {module} for module, nodes in graph.items()}


def _targets(nodes: list, modules) -> set[str]:
    """The package modules ``nodes`` import: ``from pkg import sub`` imports pkg.sub."""
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            out.update(subs & set(modules) or {node.module})
    return out & set(modules)


def test_no_module_imports_itself_back():
    graph = _module_imports()
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for dep in graph[module]:
            if dep == path[0]:
                cycles.append(" -> ".join([*path, dep]))
            elif dep not in path and len(path) < 6:
                visit(dep, [*path, dep])

    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles[:5]
