"""The folder path is the data path: every module of ``boeflow`` lives in its stage's package,
imports only from its own or earlier packages, and never from the operations toolkit
(``boeflow_ops``), which may import the application but not the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import boeflow

PACKAGE = Path(boeflow.__file__).parent
# Earlier first. review holds the checks enrich calls on each generation before it accepts
# it, so it sits below enrich; evals measures enrich and review; state stores the digest's
# decisions; jobs wire the stages; airflow, the workbench and the CLI are the edges.
LAYERS = ["core", "models", "boe", "parse", "index", "review", "enrich", "evals", "digest",
          "state", "jobs", "workbench", "airflow", "cli"]
TOP_LEVEL = {"__init__.py", "__main__.py"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_stage_module_outside_its_package() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in TOP_LEVEL]
    assert loose == []
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS), f"a package outside the layer order: {packages ^ set(LAYERS)}"


def test_no_import_from_a_later_stage_or_from_operations() -> None:
    wrong = []
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        if relative.name in TOP_LEVEL and len(relative.parts) == 1:
            continue
        own = LAYERS.index(relative.parts[0])
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "boeflow_ops":
                wrong.append(f"{relative}:{line} imports the operations toolkit ({module})")
            elif parts[0] == "boeflow" and len(parts) > 1 and parts[1] in LAYERS \
                    and LAYERS.index(parts[1]) > own:
                wrong.append(f"{relative}:{line} ({relative.parts[0]}) imports later {module}")
    assert wrong == []


def test_the_operations_toolkit_is_apart() -> None:
    import boeflow_ops

    ops = Path(boeflow_ops.__file__).parent
    assert (ops / "services").is_dir() and (ops / "airflow_api.py").exists()
    assert not (PACKAGE / "services").exists()
