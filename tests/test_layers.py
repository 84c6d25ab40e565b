"""The package's layers import only what docs/architecture.md allows.

Invariant: ``estimators`` reach the engines through ``engines.setup`` alone and never branch on
the kind of engine; ``engines`` never import the fit loop or the estimators; ``training``
(the loop included) imports no engine at run time. This is what lets a spawned pipeline rank run
the fit loop without an estimator, and a new engine plug in without touching the estimators.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "deinforeg_sklearn"


def runtime_imports(path: pathlib.Path) -> set[str]:
    """Modules a file imports when it runs (imports under ``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def identifiers(path: pathlib.Path) -> set[str]:
    """Every name and attribute the code of a file uses (docstrings and comments excluded)."""
    tree = ast.parse(path.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def files(layer: str) -> list[pathlib.Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", files("estimators"), ids=lambda p: p.name)
def test_estimators_use_the_engine_entry_point_only(path):
    engine_imports = {m for m in runtime_imports(path) if m.startswith("deinforeg_sklearn.engines")}
    assert engine_imports <= {"deinforeg_sklearn.engines.setup"}, engine_imports
    assert not any(m.startswith("torch.distributed") for m in runtime_imports(path))
    names = identifiers(path)
    for word in ("in_process", "ProcessEngine", "ThreadEngine", "SequentialEngine", "distributed"):
        assert word not in names, f"{path.name} uses {word}"


@pytest.mark.parametrize("path", files("engines"), ids=lambda p: p.name)
def test_engines_import_neither_the_loop_nor_estimators(path):
    bad = {
        m
        for m in runtime_imports(path)
        if m.startswith(("deinforeg_sklearn.estimators", "deinforeg_sklearn.training.loop", "sklearn"))
    }
    assert not bad, bad


@pytest.mark.parametrize("path", files("training"), ids=lambda p: p.name)
def test_training_imports_no_engine_at_run_time(path):
    bad = {
        m
        for m in runtime_imports(path)
        if m.startswith(("deinforeg_sklearn.engines", "deinforeg_sklearn.estimators"))
    }
    assert not bad, bad


@pytest.mark.parametrize("path", files("export"), ids=lambda p: p.name)
def test_export_reads_a_fitted_network_only(path):
    # an exported file holds the network's inference path: no engine, no fit loop, no estimator
    bad = {
        m
        for m in runtime_imports(path)
        if m.startswith(
            (
                "deinforeg_sklearn.engines",
                "deinforeg_sklearn.estimators",
                "deinforeg_sklearn.training",
                "sklearn",
            )
        )
    }
    assert not bad, bad
