"""The layer rules of docs/architecture.md, enforced: every import in `src/` is checked against the table.

The table between `<!-- layer-rules -->` markers is the one statement of the rules; this test turns each
row into an import-linter "forbidden" contract (direct imports only: a package may use what its allowed
packages use) and runs import-linter over the source tree, so a broken rule fails with the offending
import and its line. It also finds import cycles between modules, and checks that the pure packages
(`policy`, `resources`) import no I/O library.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "mcp_runtime"
DOC = ROOT / "docs" / "architecture.md"

PURE_PACKAGES = ("policy", "resources")
PURE_IMPORTS = frozenset({
    "__future__", "abc", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "itertools", "json", "math", "operator", "re", "string", "types", "typing",
    "typing_extensions", "uuid", "pydantic", "yaml", "cel", "celpy", "jsonschema",
})
"""What a pure module may import besides its own packages: computation only, no files, sockets or processes."""
IO_CALLS = frozenset({"open", "print", "input", "exec", "eval", "breakpoint"})


def layer_rules(text: str) -> dict[str, set[str] | None]:
    """package -> the packages of ours it may import; None means every package (but those excluded)."""
    block = text.split("<!-- layer-rules -->", 1)[1].split("<!-- /layer-rules -->", 1)[0]
    rules: dict[str, set[str] | None] = {}
    excluded: dict[str, set[str]] = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        package = cells[0].strip("`")
        allowed = cells[1]
        if allowed.startswith("every package"):
            rules[package] = None
            excluded[package] = set(re.findall(r"`(\w+)`", allowed))
        else:
            rules[package] = set(re.findall(r"`(\w+)`", allowed))
    packages = set(rules)
    for package, names in excluded.items():
        rules[package] = packages - names - {package}
    return rules


def source_packages(src: Path) -> set[str]:
    return {p.name for p in (src / PACKAGE).iterdir() if (p / "__init__.py").exists()}


def linter_config(rules: dict[str, set[str] | None]) -> str:
    """An import-linter configuration with one forbidden contract per row of the table."""
    packages = set(rules)
    sections = ["[importlinter]", f"root_package = {PACKAGE}", "include_external_packages = False", ""]
    for package, allowed in sorted(rules.items()):
        forbidden = sorted(packages - (allowed or set()) - {package})
        if not forbidden:
            continue
        sections += [
            f"[importlinter:contract:{package}]",
            f"name = {package} may import only: {', '.join(sorted(allowed or ())) or 'nothing of ours'}",
            "type = forbidden",
            f"source_modules = {PACKAGE}.{package}",
            "forbidden_modules =",
            *[f"    {PACKAGE}.{name}" for name in forbidden],
            "allow_indirect_imports = True",
            "",
        ]
    return "\n".join(sections)


def run_linter(src: Path, config: str, tmp_path: Path) -> tuple[int, str]:
    """Run import-linter over the package under `src` (a fresh process, so a copy can be checked too)."""
    ini = tmp_path / "importlinter.ini"
    ini.write_text(config)
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ini)!r}, no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    return done.returncode, done.stdout + done.stderr


def module_cycles(src: Path) -> list[list[str]]:
    """Import cycles between modules (strongly connected components of more than one module)."""
    code = textwrap.dedent(f"""
        import json, sys
        import grimp
        graph = grimp.build_graph({PACKAGE!r}, include_external_packages=False, cache_dir=None)
        print(json.dumps({{m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                          env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    edges: dict[str, list[str]] = json.loads(done.stdout)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def impure_lines(path: Path) -> list[str]:
    """Imports of non-pure libraries and calls that do I/O in one module of a pure package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top != PACKAGE and top not in PURE_IMPORTS:
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_CALLS:
            found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return found


# --- the rules hold for the code ---------------------------------------------------------------------------


def test_every_package_has_exactly_one_rule() -> None:
    rules = layer_rules(DOC.read_text())
    assert set(rules) == source_packages(SRC), (
        "docs/architecture.md's layer table and the packages under src/mcp_runtime differ")


def test_imports_follow_the_layer_rules(tmp_path: Path) -> None:
    code, report = run_linter(SRC, linter_config(layer_rules(DOC.read_text())), tmp_path)
    assert code == 0, report
    assert "BROKEN" not in report and "KEPT" in report


def test_there_is_no_import_cycle() -> None:
    assert module_cycles(SRC) == []


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_do_no_io(package: str) -> None:
    found = [line for path in sorted((SRC / PACKAGE / package).rglob("*.py")) for line in impure_lines(path)]
    assert found == [], f"{package}/ must do no I/O (docs/architecture.md): {found}"


# --- and the checks catch a break ------------------------------------------------------------------------


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SRC / PACKAGE, copy / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def test_a_wrong_import_fails_and_is_named(source_copy: Path, tmp_path: Path) -> None:
    app = source_copy / PACKAGE / "gateway" / "app.py"
    app.write_text(app.read_text() + "\nfrom mcp_runtime.platform import core as _wrong  # noqa\n")
    code, report = run_linter(source_copy, linter_config(layer_rules(DOC.read_text())), tmp_path)
    assert code != 0
    assert "gateway may import only" in report and "BROKEN" in report
    assert "mcp_runtime.gateway.app -> mcp_runtime.platform.core" in report


def test_a_cycle_is_found(source_copy: Path) -> None:
    kinds = source_copy / PACKAGE / "resources" / "kinds.py"
    kinds.write_text(kinds.read_text() + "\nfrom mcp_runtime.resources import io as _cycle  # noqa\n")
    cycles = module_cycles(source_copy)
    assert any({f"{PACKAGE}.resources.kinds", f"{PACKAGE}.resources.io"} <= set(c) for c in cycles), cycles


def test_io_in_a_pure_package_is_found(tmp_path: Path) -> None:
    module = tmp_path / "leaky.py"
    module.write_text("import socket\nfrom pathlib import Path\n\ndef f():\n    print(open('x').read())\n")
    assert impure_lines(module) == ["leaky.py:1 imports socket", "leaky.py:2 imports pathlib",
                                    "leaky.py:5 calls print()", "leaky.py:5 calls open()"]


def test_the_rule_table_parses() -> None:
    rules = layer_rules(DOC.read_text())
    assert rules["resources"] == set() and rules["policy"] == {"resources"}
    assert "platform" not in (rules["gateway"] or set()) and "store" not in (rules["gateway"] or set())
    assert rules["cli"] == set(rules) - {"cli"} and rules["compose"] == set(rules) - {"cli", "compose"}
