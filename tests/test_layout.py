"""The package's dependencies point down the flow (docs/layout.md): read from the source with
``ast``, so a new import that breaks the layering fails here, not in a reviewer's head."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seq2seq"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, in_functions_only: bool = False) -> set[str]:
    """Every module ``path`` imports (``from seq2seq import plots`` counts as ``seq2seq.plots``);
    with ``in_functions_only``, those imported inside a function's body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if in_functions_only:
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        nodes = [n for f in functions for n in ast.walk(f)]
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def package_imports(path: Path) -> set[str]:
    known = {module_name(p) for p in MODULES}
    return {name for name in imports(path) if name in known and name != "seq2seq"}


def test_constants_import_nothing_of_the_package() -> None:
    assert package_imports(PACKAGE / "constants.py") == set()


@pytest.mark.parametrize("path", sorted((PACKAGE / "config").glob("*.py")), ids=lambda p: p.name)
def test_config_imports_nothing_above_it(path: Path) -> None:
    allowed = {"seq2seq.constants", "seq2seq.errors"}
    assert {n for n in package_imports(path) if not n.startswith("seq2seq.config")} <= allowed


@pytest.mark.parametrize("path", sorted((PACKAGE / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_know_nothing_of_configs_tokenizers_or_hydra(path: Path) -> None:
    for name in package_imports(path):
        assert name in ("seq2seq.constants", "seq2seq.errors") or name.startswith("seq2seq.models"), name
    assert not {n for n in imports(path) if n.split(".")[0] in ("omegaconf", "hydra", "sentencepiece")}


def test_only_the_cli_and_the_api_run_hydra() -> None:
    for path in MODULES:
        uses = {n for n in imports(path) if n.split(".")[0] == "hydra"}
        if module_name(path) == "seq2seq.cli":
            assert "hydra" in uses
        elif module_name(path) == "seq2seq.api":
            assert uses == {"hydra", "hydra.compose", "hydra.initialize_config_dir"}
        elif module_name(path) == "seq2seq.config.registration":
            assert uses == {"hydra.core.config_store", "hydra.core.config_store.ConfigStore"}  # registers, on call
        else:
            assert not uses, module_name(path)


def test_no_library_module_imports_the_cli() -> None:
    for path in MODULES:
        if module_name(path) != "seq2seq.cli":
            assert "seq2seq.cli" not in package_imports(path), module_name(path)


def test_no_function_level_imports_of_the_package_but_the_optional_plots_server_and_export() -> None:
    """plots (matplotlib), serve (the [serve] extra) and export (the [export] extra) are imported
    where they are used, so the package works without them."""
    for path in MODULES:
        inner = {n for n in imports(path, in_functions_only=True) if n.startswith("seq2seq")}
        extras = {"seq2seq.serve", "seq2seq.serve.run_serve", "seq2seq.export", "seq2seq.export.run_export"}
        optional = {"seq2seq.plots"} | (extras if path.name == "cli.py" else set())
        assert inner <= {"seq2seq"} | optional, (module_name(path), inner)


def test_nothing_but_the_cli_imports_the_server() -> None:
    for path in MODULES:
        if path.name not in ("cli.py", "serve.py"):
            assert not {n for n in imports(path) if n.startswith("seq2seq.serve")}, module_name(path)


def test_nothing_but_the_cli_imports_the_export_or_ctranslate2() -> None:
    for path in MODULES:
        if path.name not in ("cli.py", "export.py"):
            found = {n for n in imports(path) if n.startswith("seq2seq.export") or n.split(".")[0] == "ctranslate2"}
            assert not found, module_name(path)


def test_importing_the_package_registers_no_configs() -> None:
    code = (
        "import seq2seq, seq2seq.cli\n"
        "from hydra.core.config_store import ConfigStore\n"
        "assert 'train_schema.yaml' not in ConfigStore.instance().list('/'), 'registered on import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_docs_layout_names_every_module() -> None:
    """docs/layout.md is where a newcomer finds their way in: each module of the package has its
    line there (empty ``__init__.py`` files aside), and the page names no module that is gone."""
    page = (PACKAGE.parent / "docs" / "layout.md").read_text(encoding="utf-8")
    block = page.split("```")[1]  # the tree, the page's first code block
    named = set(re.findall(r"[\w/]+\.py", block))
    modules = {p.relative_to(PACKAGE).as_posix() for p in MODULES if p.name != "__init__.py" or p.stat().st_size}
    assert modules - named == set(), "add these to docs/layout.md"
    assert named - modules == set(), "docs/layout.md names modules that are gone"
